"""A hash table from 64-bit keys to ids, built and queried for whole arrays at a time.

Open addressing with linear probing, at most a quarter full, slots chosen by multiplying
the key by an odd constant and keeping the top bits (Fibonacci hashing). A lookup of N keys
is a handful of array operations over N plus a few over the keys that met another key in
their first slot; sorting the queries and binary search (the alternative with numpy alone)
costs about three times as much. Each round of probing costs several array operations
however few keys are left, so the last few keys are found by binary search in a sorted copy.
"""

from __future__ import annotations

import numpy as np

ABSENT = -1
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_FEW = 2_048
"""Probing stops once this few keys are still unresolved; a binary search finds those."""


class DuplicateKeys(ValueError):
    """Two entries of a table share a key."""


class KeyTable:
    """Maps uint64 keys to non-negative int64 ids; unknown keys map to ``ABSENT``."""

    def __init__(self, keys: np.ndarray, ids: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(keys)
        self._sorted_keys, self._sorted_ids = keys[order], ids[order]
        if (repeated := int(np.count_nonzero(self._sorted_keys[1:] == self._sorted_keys[:-1]))) > 0:
            raise DuplicateKeys(f"{repeated} duplicate keys")
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        self._keys = np.zeros(1 << bits, dtype=np.uint64)
        self._ids = np.full(1 << bits, ABSENT, dtype=np.int64)
        pending = np.arange(len(keys))
        probe = self._slots(keys)
        while len(pending):
            free = self._ids[probe] == ABSENT
            slots, first = np.unique(probe[free], return_index=True)  # one key wins each free slot
            winners = pending[free][first]
            self._keys[slots], self._ids[slots] = keys[winners], ids[winners]
            placed = np.zeros(len(pending), dtype=np.bool_)
            placed[np.flatnonzero(free)[first]] = True
            pending, probe = pending[~placed], (probe[~placed] + 1) & self._mask

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * _MULTIPLIER) >> self._shift).astype(np.intp)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The id of each key, ``ABSENT`` for keys not in the table."""
        keys = np.asarray(keys, dtype=np.uint64)
        slots = self._slots(keys)
        ids = self._ids.take(slots)
        hit = self._keys.take(slots) == keys
        found = np.where(hit, ids, ABSENT)
        pending = np.flatnonzero(~hit & (ids != ABSENT))  # another key holds the slot: probe on
        probe = slots[pending]
        while len(pending) > _FEW:
            probe = (probe + 1) & self._mask
            ids = self._ids.take(probe)
            hit = self._keys.take(probe) == keys[pending]
            found[pending[hit]] = ids[hit]
            more = ~hit & (ids != ABSENT)
            pending, probe = pending[more], probe[more]
        if len(pending):  # a few keys left: one binary search beats more rounds of probing
            where = np.searchsorted(self._sorted_keys, keys[pending])
            where[where == len(self._sorted_keys)] = 0
            hit = self._sorted_keys[where] == keys[pending] if len(self._sorted_keys) else where < 0
            found[pending[hit]] = self._sorted_ids[where[hit]]
        return found
