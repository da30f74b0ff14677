"""The array hash table finds every key it holds and nothing else, however keys collide."""

from __future__ import annotations

import numpy as np
import pytest

from tagloop.recipes import key_table
from tagloop.recipes.key_table import ABSENT, DuplicateKeys, KeyTable

MULTIPLIER = 0x9E3779B97F4A7C15


def test_finds_its_keys_and_reports_others_absent():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**63, size=50_000, dtype=np.int64).astype(np.uint64)
    keys = np.unique(keys)
    ids = rng.permutation(len(keys))
    table = KeyTable(keys, ids)
    assert np.array_equal(table.get(keys), ids)
    others = np.setdiff1d(rng.integers(0, 2**63, size=50_000, dtype=np.int64).astype(np.uint64), keys)
    assert (table.get(others) == ABSENT).all()
    mixed = np.concatenate([others[:10], keys[:10], others[10:20]])
    assert table.get(mixed).tolist() == [ABSENT] * 10 + ids[:10].tolist() + [ABSENT] * 10


def test_keys_that_share_a_slot_are_all_found():
    # keys k with k * MULTIPLIER = (slot << shift) + small: all have the same first slot
    inverse = pow(MULTIPLIER, -1, 1 << 64)
    crowded = [(((5 << 58) + i) * inverse) % (1 << 64) for i in range(40)]
    spread = [i * 7919 for i in range(1, 60)]
    keys = np.array(crowded + spread, dtype=np.uint64)
    table = KeyTable(keys, np.arange(len(keys)))
    assert table.get(keys).tolist() == list(range(len(keys)))
    near_miss = np.array([(((5 << 58) + 1000 + i) * inverse) % (1 << 64) for i in range(10)], dtype=np.uint64)
    assert (table.get(near_miss) == ABSENT).all()


def test_empty_table_and_empty_queries():
    table = KeyTable(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
    assert table.get(np.array([0, 1, 2**64 - 1], dtype=np.uint64)).tolist() == [ABSENT] * 3
    assert table.get(np.zeros(0, dtype=np.uint64)).tolist() == []


def test_duplicate_keys_are_refused():
    with pytest.raises(DuplicateKeys, match="duplicate"):
        KeyTable(np.array([3, 4, 3], dtype=np.uint64), np.array([0, 1, 2]))
    table = KeyTable(np.array([0, 2**64 - 1], dtype=np.uint64), np.array([7, 8]))  # any 64-bit key
    assert table.get(np.array([2**64 - 1, 0, 3], dtype=np.uint64)).tolist() == [8, 7, ABSENT]


@pytest.mark.parametrize("few", [0, 5, 10_000])
def test_probing_and_binary_search_find_the_same(monkeypatch, few):
    monkeypatch.setattr(key_table, "_FEW", few)  # 0: probe to the end; 10,000: search at once
    inverse = pow(MULTIPLIER, -1, 1 << 64)
    crowded = [(((9 << 58) + i) * inverse) % (1 << 64) for i in range(60)]
    keys = np.array(crowded + list(range(1, 3_000, 3)), dtype=np.uint64)
    table = KeyTable(keys, np.arange(len(keys)))
    queries = np.concatenate([keys, np.arange(0, 3_000, 3).astype(np.uint64)])  # none is 1 mod 3
    expected = list(range(len(keys))) + [ABSENT] * 1_000
    assert table.get(queries).tolist() == expected
