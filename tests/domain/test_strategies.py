"""Query strategies on tiny fixtures whose picks are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from tagloop.domain import strategies as s
from tagloop.domain.strategies import STRATEGIES, Candidates, strategy
from tagloop.errors import InvalidRequest

# Five pool documents, three labels (multi-class rows sum to 1):
#   doc  scores            best  1-best  top2 gap  entropy (nats)
#   0    .90 .05 .05       .90   .10     .85       0.394
#   1    .40 .35 .25       .40   .60     .05       1.081
#   2    .50 .50 .00       .50   .50     .00       0.693
#   3    .34 .33 .33       .34   .66     .01       1.099
#   4    .60 .20 .20       .60   .40     .40       0.950
SCORES = np.array(
    [
        [0.90, 0.05, 0.05],
        [0.40, 0.35, 0.25],
        [0.50, 0.50, 0.00],
        [0.34, 0.33, 0.33],
        [0.60, 0.20, 0.20],
    ]
)
POOL = Candidates(SCORES)
RNG = np.random.default_rng(0)


def picks(name: str, candidates: Candidates, count: int, seed: int = 0) -> list[int]:
    return strategy(name).select(candidates, count, np.random.default_rng(seed)).tolist()


def test_least_confidence_picks_the_least_sure_best_label():
    # 1 - best: doc 3 .66, doc 1 .60, doc 2 .50, doc 4 .40, doc 0 .10
    assert picks("least-confidence", POOL, 3) == [3, 1, 2]
    assert picks("least-confidence", POOL, 10) == [3, 1, 2, 4, 0]


def test_margin_picks_the_smallest_gap_between_the_two_best():
    # gaps: doc 2 .00, doc 3 .01, doc 1 .05, doc 4 .40, doc 0 .85
    assert picks("margin", POOL, 3) == [2, 3, 1]


def test_entropy_picks_the_highest_entropy():
    # doc 3 1.099, doc 1 1.081, doc 4 0.950, doc 2 0.693, doc 0 0.394
    assert picks("entropy", POOL, 4) == [3, 1, 4, 2]
    assert s.entropy(SCORES)[2] == pytest.approx(np.log(2))


def test_the_three_uncertainty_measures_disagree_where_the_fixture_says():
    assert picks("least-confidence", POOL, 1) != picks("margin", POOL, 1)
    assert picks("margin", POOL, 1) != picks("entropy", POOL, 1)


def test_multi_label_uncertainty_is_the_most_doubtful_label():
    # label scores per doc; the most doubtful label's distance from .5:
    #   doc 0: .95 .02 -> .45     doc 1: .55 .10 -> .05     doc 2: .70 .40 -> .10
    scores = np.array([[0.95, 0.02], [0.55, 0.10], [0.70, 0.40]])
    pool = Candidates(scores, multi_label=True)
    assert picks("least-confidence", pool, 3) == [1, 2, 0]
    assert picks("margin", pool, 3) == [1, 2, 0]
    # entropy sums the labels' binary entropies: doc 2 (.611 + .673) beats doc 1 (.688 + .325)
    assert picks("entropy", pool, 3) == [2, 1, 0]


def test_ties_keep_pool_order():
    pool = Candidates(np.array([[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]]))
    assert picks("margin", pool, 3) == [0, 2, 1]


def test_random_is_a_seeded_sample_without_repeats():
    first = picks("random", POOL, 3, seed=7)
    assert first == picks("random", POOL, 3, seed=7)
    assert first == np.random.default_rng(7).permutation(5)[:3].tolist()
    assert len(set(picks("random", POOL, 5, seed=1))) == 5


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_returns_at_most_count_distinct_indices(name):
    rng = np.random.default_rng(3)
    n = 40
    scores = rng.dirichlet(np.ones(4), size=n)
    features = _normalized(rng.random((n, 6)))
    pool = Candidates(scores, features, _normalized(rng.random((3, 6))))
    chosen = strategy(name).select(pool, 7, rng)
    assert chosen.dtype == np.int64
    assert len(chosen) == 7 == len(set(chosen.tolist()))
    assert all(0 <= i < n for i in chosen)
    assert len(strategy(name).select(pool, 0, rng)) == 0
    assert len(strategy(name).select(pool, 1000, rng)) <= n
    empty = Candidates(np.zeros((0, 4)), _normalized(np.zeros((0, 6))), None)
    assert len(strategy(name).select(empty, 5, rng)) == 0


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(InvalidRequest, match=r"unknown strategy 'best'.*margin"):
        strategy("best")


def test_a_negative_count_is_refused():
    with pytest.raises(InvalidRequest, match="count"):
        strategy("margin").select(POOL, -1, RNG)


def _normalized(dense: np.ndarray):
    import scipy.sparse as sp

    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return sp.csr_matrix(dense / norms)
