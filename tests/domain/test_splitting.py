"""Deterministic stratified splits (domain/splitting.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tagloop.domain.splitting import stratification_keys, stratified_holdout


def make_keys(sizes: dict[str, int]) -> list[str]:
    """Interleaved keys so that groups are not contiguous."""
    keys: list[str] = []
    remaining = dict(sizes)
    while any(remaining.values()):
        for key in sizes:
            if remaining[key]:
                keys.append(key)
                remaining[key] -= 1
    return keys


SIZES = {"A": 100, "B": 40, "C": 10, "D": 3, "E": 2, "F": 1}
KEYS = make_keys(SIZES)


def held_per_key(keys: list[str], mask: np.ndarray) -> Counter[str]:
    return Counter(key for key, held in zip(keys, mask, strict=True) if held)


def test_mask_shape_and_type():
    mask, _ = stratified_holdout(KEYS, 0.2, seed=0)
    assert mask.dtype == bool
    assert mask.shape == (len(KEYS),)


def test_deterministic_for_a_seed():
    first, small_first = stratified_holdout(KEYS, 0.2, seed=42)
    second, small_second = stratified_holdout(list(KEYS), 0.2, seed=42)
    assert np.array_equal(first, second)
    assert small_first == small_second


def test_different_seeds_pick_different_documents():
    masks = [stratified_holdout(KEYS, 0.2, seed=seed)[0] for seed in range(5)]
    assert any(not np.array_equal(masks[0], other) for other in masks[1:])
    # ... but always the same number per group
    counts = [held_per_key(KEYS, mask) for mask in masks]
    assert all(count == counts[0] for count in counts)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.5])
def test_holds_out_about_the_fraction_of_each_group(fraction):
    mask, _ = stratified_holdout(KEYS, fraction, seed=1)
    held = held_per_key(KEYS, mask)
    for key, size in SIZES.items():
        if size < 3:
            continue
        expected = min(size - 1, max(1, round(size * fraction)))
        assert held[key] == expected, key
        assert abs(held[key] - size * fraction) <= max(1, 0.01 * size), key


def test_every_split_group_keeps_a_member_on_each_side():
    for fraction in (0.01, 0.5, 0.9, 0.99, 1.0):
        mask, _ = stratified_holdout(KEYS, fraction, seed=3)
        held = held_per_key(KEYS, mask)
        for key, size in SIZES.items():
            if size >= 3:
                assert 1 <= held[key] <= size - 1, (fraction, key)


def test_small_groups_stay_in_training_and_are_reported():
    mask, too_small = stratified_holdout(KEYS, 0.5, seed=0)
    held = held_per_key(KEYS, mask)
    assert too_small == ["E", "F"]
    assert held["E"] == 0
    assert held["F"] == 0
    assert held["D"] >= 1  # exactly min_group members: split


def test_min_group_is_configurable():
    mask, too_small = stratified_holdout(KEYS, 0.5, seed=0, min_group=11)
    held = held_per_key(KEYS, mask)
    assert too_small == ["C", "D", "E", "F"]
    assert set(held) == {"A", "B"}
    _, too_small = stratified_holdout(KEYS, 0.5, seed=0, min_group=2)
    assert too_small == ["F"]


def test_groups_keep_their_positions():
    keys = ["x", "y"] * 20
    mask, _ = stratified_holdout(keys, 0.25, seed=9)
    assert mask[0::2].sum() == 5
    assert mask[1::2].sum() == 5


def test_empty_and_unlabelled_keys():
    mask, too_small = stratified_holdout([], 0.2, seed=0)
    assert mask.shape == (0,)
    assert too_small == []
    mask, too_small = stratified_holdout(["", "", "", "", ""], 0.4, seed=0)
    assert mask.sum() == 2
    assert too_small == []


def test_result_does_not_depend_on_the_order_groups_first_appear():
    # Groups are visited in sorted order: the members picked within each group are the same.
    keys = make_keys({"A": 20, "B": 20})
    reordered = make_keys({"B": 20, "A": 20})
    mask, _ = stratified_holdout(keys, 0.2, seed=5)
    other, _ = stratified_holdout(reordered, 0.2, seed=5)
    for key in ("A", "B"):
        mine = [held for k, held in zip(keys, mask, strict=True) if k == key]
        theirs = [held for k, held in zip(reordered, other, strict=True) if k == key]
        assert mine == theirs


# ---- stratification keys ------------------------------------------------------------------
def test_single_labels_are_their_own_key():
    assert stratification_keys([("A",), ("B",), ("A",)]) == ["A", "B", "A"]


def test_multi_label_documents_take_their_rarest_label():
    docs = [("COMMON", "RARE"), ("COMMON",), ("COMMON", "MID"), ("MID", "COMMON"), ("RARE", "MID")]
    # counts: COMMON 4, MID 3, RARE 2
    assert stratification_keys(docs) == ["RARE", "COMMON", "MID", "MID", "RARE"]


def test_ties_break_by_label_name():
    assert stratification_keys([("b", "a"), ("a", "b")]) == ["a", "a"]


def test_unlabelled_documents_get_an_empty_key():
    assert stratification_keys([(), ("A",)]) == ["", "A"]
    assert stratification_keys([]) == []


def test_keys_feed_the_holdout():
    docs = [("A",)] * 10 + [("A", "B")] * 5 + [("C",)] * 2
    keys = stratification_keys(docs)
    mask, too_small = stratified_holdout(keys, 0.2, seed=0)
    assert too_small == ["C"]
    held = held_per_key(keys, mask)
    assert held == {"A": 2, "B": 1}
