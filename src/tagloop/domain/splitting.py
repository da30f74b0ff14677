"""Deterministic stratified splits (test set, calibration hold-out)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np


def stratification_keys(labels: Sequence[tuple[str, ...]]) -> list[str]:
    """One key per document: its label, or for multi-label documents its rarest label."""
    counts = Counter(label for doc in labels for label in doc)
    return [min(doc, key=lambda label: (counts[label], label)) if doc else "" for doc in labels]


def stratified_holdout(
    keys: Sequence[str], fraction: float, seed: int, min_group: int = 3
) -> tuple[np.ndarray, list[str]]:
    """Pick about ``fraction`` of the positions of every key group for a hold-out set.

    Returns a boolean mask (True = held out) and the keys whose groups were too small to
    split (fewer than ``min_group`` members): those stay entirely outside the hold-out.
    Every group that is split keeps at least one member on each side.
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for position, key in enumerate(keys):
        groups[key].append(position)
    mask = np.zeros(len(keys), dtype=bool)
    too_small = []
    for key in sorted(groups):
        members = np.asarray(groups[key])
        if len(members) < min_group:
            too_small.append(key)
            continue
        take = min(len(members) - 1, max(1, round(len(members) * fraction)))
        mask[rng.choice(members, size=take, replace=False)] = True
    return mask, too_small
