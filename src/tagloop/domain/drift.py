"""Drift statistics: how far one distribution of predictions moved from another.

Two kinds of distribution are compared, both as counts per bin: the predicted best labels
(a bin per label) and the best scores (``SCORE_BINS`` equal bins over [0, 1], see
:func:`score_bin`). Each comparison gives

- the **population stability index** (PSI): ``Σ (a − e) · ln(a / e)`` over the bins, where
  ``e`` and ``a`` are the expected (reference) and actual shares of each bin, a share below
  ``EPSILON`` counted as ``EPSILON`` (so an empty bin adds a large but finite term). Usual
  reading (Siddiqi, *Credit Risk Scorecards*, 2006): below 0.1 no shift, 0.1-0.2 a moderate
  one, above 0.2 a significant one. Symmetric in its two arguments.
- **Pearson's chi-squared test of homogeneity** on the 2 × k table of both samples' counts
  (``scipy.stats.chi2_contingency``, bins empty in both left out): the p-value that both
  samples come from one distribution. With thousands of predictions a day, tiny shifts are
  "significant": the PSI, which does not grow with the sample, is what the drift flag reads.

:func:`ks_test` is the two-sample Kolmogorov-Smirnov test for raw scores (when both samples
are at hand rather than their histograms).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-4
"""The smallest share a bin counts with in the PSI (an empty bin would make it infinite)."""
SCORE_BINS = 10
"""Best scores are counted in this many equal bins over [0, 1]: [0, 0.1), [0.1, 0.2), ... [0.9, 1]."""
SCORE_EDGES = tuple(round(i / SCORE_BINS, 10) for i in range(1, SCORE_BINS))
"""The upper bounds (exclusive) of every bin but the last."""


def score_bin(score: float) -> int:
    """The bin of a best score: ``floor(score · SCORE_BINS)``, 1.0 (and anything above) in the
    last bin, anything below 0 in the first."""
    for index, edge in enumerate(SCORE_EDGES):
        if score < edge:
            return index
    return SCORE_BINS - 1


def score_histogram(scores: Iterable[float]) -> list[int]:
    """Counts of ``scores`` per bin (:func:`score_bin`); NaN scores are left out."""
    counts = [0] * SCORE_BINS
    for score in scores:
        if not math.isnan(score):
            counts[score_bin(score)] += 1
    return counts


def _as_mapping(counts: Mapping[str, float] | Sequence[float]) -> Mapping[str, float]:
    if isinstance(counts, Mapping):
        return counts
    return {str(index): value for index, value in enumerate(counts)}


def _aligned(
    expected: Mapping[str, float] | Sequence[float], actual: Mapping[str, float] | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Both count vectors over the union of their bins (a histogram is a sequence of bins)."""
    left, right = _as_mapping(expected), _as_mapping(actual)
    for counts in (left, right):
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"bin {key!r}: {value!r} is not a count")
    keys = sorted(set(left) | set(right))
    return (
        np.array([float(left.get(key, 0)) for key in keys]),
        np.array([float(right.get(key, 0)) for key in keys]),
    )


def psi(
    expected: Mapping[str, float] | Sequence[float],
    actual: Mapping[str, float] | Sequence[float],
    epsilon: float = EPSILON,
) -> float | None:
    """The population stability index of ``actual`` against ``expected`` (counts per bin, as
    dicts keyed by bin or as sequences of the same bins); None when either has no count."""
    e, a = _aligned(expected, actual)
    if e.sum() <= 0 or a.sum() <= 0:
        return None
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True, slots=True)
class ChiSquared:
    statistic: float
    dof: int
    p_value: float


def chi_squared(
    expected: Mapping[str, float] | Sequence[float], actual: Mapping[str, float] | Sequence[float]
) -> ChiSquared | None:
    """Pearson's chi-squared test that both samples (counts per bin) share one distribution;
    None when it cannot be computed (a sample with no count, or fewer than 2 bins used)."""
    e, a = _aligned(expected, actual)
    used = (e + a) > 0
    e, a = e[used], a[used]
    if e.sum() <= 0 or a.sum() <= 0 or len(e) < 2:
        return None
    from scipy import stats  # here, not at import: scipy.stats adds ~0.4 s to every start-up

    statistic, p_value, dof, _ = stats.chi2_contingency(np.vstack([e, a]), correction=False)
    return ChiSquared(float(statistic), int(dof), float(p_value))


@dataclass(frozen=True, slots=True)
class KolmogorovSmirnov:
    statistic: float
    p_value: float


def ks_test(expected: Sequence[float], actual: Sequence[float]) -> KolmogorovSmirnov | None:
    """The two-sample Kolmogorov-Smirnov test on raw scores; None when a sample is empty."""
    if len(expected) == 0 or len(actual) == 0:
        return None
    from scipy import stats

    result = stats.ks_2samp(np.asarray(expected, dtype=float), np.asarray(actual, dtype=float))
    return KolmogorovSmirnov(float(result.statistic), float(result.pvalue))


@dataclass(frozen=True, slots=True)
class Comparison:
    """One distribution against another: its PSI and chi-squared test (None: not computable)."""

    psi: float | None
    chi_squared: ChiSquared | None

    def to_dict(self) -> dict[str, float | int | None]:
        test = self.chi_squared
        return {
            "psi": None if self.psi is None else round(self.psi, 6),
            "chi2": None if test is None else round(test.statistic, 6),
            "dof": None if test is None else test.dof,
            "p_value": None if test is None else test.p_value,
        }


def compare(
    expected: Mapping[str, float] | Sequence[float] | None,
    actual: Mapping[str, float] | Sequence[float] | None,
) -> Comparison:
    """PSI and chi-squared of ``actual`` against ``expected`` (either None: nothing computed)."""
    if expected is None or actual is None:
        return Comparison(None, None)
    return Comparison(psi(expected, actual), chi_squared(expected, actual))


def drifted(comparisons: Iterable[Comparison], count: int, threshold: float, min_count: int) -> bool:
    """The drift flag: a window of at least ``min_count`` predictions whose PSI against the
    reference reaches ``threshold`` for any of the compared distributions."""
    return count >= min_count and any(c.psi is not None and c.psi >= threshold for c in comparisons)
