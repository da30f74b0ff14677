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
    features = _normalized(np.eye(n) + 0.1 * rng.random((n, n)))  # distinct documents
    pool = Candidates(scores, features, _normalized(rng.random((3, n))))
    chosen = strategy(name).select(pool, 7, rng)
    assert chosen.dtype == np.int64
    assert len(chosen) == 7 == len(set(chosen.tolist()))
    assert all(0 <= i < n for i in chosen)
    assert len(strategy(name).select(pool, 0, rng)) == 0
    assert len(strategy(name).select(pool, 1000, rng)) <= n
    empty = Candidates(np.zeros((0, 4)), _normalized(np.zeros((0, n))), None)
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


# ---- batch-aware strategies --------------------------------------------------------------------
E = np.eye(4)
# three groups of near-duplicate documents (cosine 0.9999 within a group, 0 across):
#   group A: docs 0, 1 ~ e1     group B: docs 2, 3 ~ e2     group C: docs 4, 5 ~ e3
GROUPED = _normalized(
    np.vstack([E[0], E[0] + 0.01 * E[3], E[1], E[1] + 0.01 * E[3], E[2], E[2] + 0.01 * E[3]])
)
GROUP = [0, 0, 1, 1, 2, 2]
# two labels; gap between the two scores: .02 .04 .10 .06 .50 .30
GROUPED_SCORES = np.array(
    [[0.51, 0.49], [0.52, 0.48], [0.55, 0.45], [0.53, 0.47], [0.75, 0.25], [0.65, 0.35]]
)


def test_plain_margin_spends_a_batch_on_near_duplicates():
    assert picks("margin", Candidates(GROUPED_SCORES, GROUPED), 3) == [0, 1, 3]  # 0 and 1: group A twice


def test_cluster_margin_takes_the_most_doubtful_document_of_each_cluster():
    pool = Candidates(GROUPED_SCORES, GROUPED)
    # the 6 candidates (10 × 3 ≥ 6) fall in the three groups; each gives its smallest gap:
    # A -> 0 (.02), B -> 3 (.06), C -> 5 (.30); in margin order
    for seed in range(5):
        assert picks("cluster-margin", pool, 3, seed) == [0, 3, 5]
    assert picks("cluster-margin", pool, 1) == [0]  # one cluster: the global best


def test_badge_starts_with_the_largest_gradient_and_never_repeats_a_duplicate():
    # exact duplicates (same row, same scores) in each group; gradient norm² = 2 (1 - p_best)²:
    # largest for doc 0 (p = .51). A duplicate of a pick is at distance 0: probability 0.
    rows = _normalized(np.vstack([E[0], E[0], E[1], E[1], E[2], E[2]]))
    scores = np.array([[0.51, 0.49], [0.51, 0.49], [0.6, 0.4], [0.6, 0.4], [0.7, 0.3], [0.7, 0.3]])
    pool = Candidates(scores, rows)
    for seed in range(20):
        chosen = picks("badge", pool, 3, seed)
        assert chosen[0] == 0
        assert sorted(GROUP[i] for i in chosen) == [0, 1, 2]
    assert len(picks("badge", pool, 6)) == 3  # only three distinct gradients: it stops there


def test_coreset_covers_what_the_labelled_set_does_not():
    # labelled: e1. Cosine distance to the nearest labelled-or-picked row:
    #   doc 0 = e1: 0; doc 1 = (e1+e2)/√2: .293; doc 2 = e2: 1; doc 3 = e3: 1; doc 4 = e3: 1
    # pick 2 (first of the ones at 1): doc 1 stays at .293; pick 3: doc 4 drops to 0;
    # pick 1 (.293); then only distance-0 documents are left, so it stops
    rows = _normalized(np.vstack([E[0], E[0] + E[1], E[1], E[2], E[2]]))
    pool = Candidates(np.full((5, 2), 0.5), rows, _normalized(E[:1]))
    assert picks("coreset", pool, 5) == [2, 3, 1]
    assert picks("coreset", pool, 2) == [2, 3]


def test_density_weighs_doubt_by_typicality_and_skips_duplicates():
    # docs 0, 1, 2 = e1 (copies), doc 3 = e2, doc 4 = e3; mean row (.6, .2, .2):
    # density .6 .6 .6 .2 .2; entropy .693 .673 .325 .693 .611; product .416 .404 .195 .139 .122
    # greedy: 0, skip 1 and 2 (cosine 1 with 0), 3, 4
    rows = _normalized(np.vstack([E[0], E[0], E[0], E[1], E[2]]))
    scores = np.array([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1], [0.5, 0.5], [0.7, 0.3]])
    pool = Candidates(scores, rows)
    assert picks("density", pool, 3) == [0, 3, 4]
    assert picks("entropy", pool, 3) == [0, 3, 1]  # plain entropy takes the copy


@pytest.mark.parametrize("name", ["cluster-margin", "badge", "coreset", "density"])
def test_batch_aware_strategies_pick_no_near_duplicates(name):
    # 30 topics, each present three times with tiny differences (cosine > .99) and nearly the
    # same scores; a batch of 10 must hold 10 different topics
    rng = np.random.default_rng(11)
    topics = np.eye(30) + 0.05 * rng.random((30, 30))
    rows = np.vstack([topics + 0.005 * rng.random((30, 30)) for _ in range(3)])
    base = rng.dirichlet(np.ones(3), size=30)
    scores = np.vstack([base, base, base]) + 0.001 * rng.random((90, 3))
    scores /= scores.sum(axis=1, keepdims=True)
    pool = Candidates(scores, _normalized(rows), _normalized(rng.random((2, 30))))
    chosen = strategy(name).select(pool, 10, np.random.default_rng(5))
    assert len(chosen) == 10
    assert len({int(i) % 30 for i in chosen}) == 10
    assert len(picks("margin", pool, 10)) == 10
    assert len({i % 30 for i in picks("margin", pool, 10)}) < 10  # the fixture has duplicates to avoid


@pytest.mark.parametrize("name", ["cluster-margin", "badge", "coreset", "density"])
def test_batch_aware_strategies_need_features(name):
    assert strategy(name).needs_features
    with pytest.raises(InvalidRequest, match="feature rows"):
        strategy(name).select(POOL, 2, RNG)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_takes_multi_label_scores(name):
    rng = np.random.default_rng(8)
    n = 30
    scores = rng.random((n, 4))  # independent yes/no scores per label
    pool = Candidates(scores, _normalized(np.eye(n) + 0.1 * rng.random((n, n))), None, multi_label=True)
    chosen = strategy(name).select(pool, 6, np.random.default_rng(2))
    assert len(chosen) == 6 == len(set(chosen.tolist()))


def test_badge_multi_label_hypothesis_is_every_label_at_or_above_half():
    # doc 0: scores .5 .5 -> hypothesis (1, 1), u = (-.5, -.5), |u|² = .5
    # doc 1: scores .9 .1 -> hypothesis (1, 0), u = (-.1, .1), |u|² = .02
    # doc 2: scores .6 .45 -> hypothesis (1, 0), u = (-.4, .45), |u|² = .3625
    rows = _normalized(np.eye(3))
    pool = Candidates(np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.45]]), rows, multi_label=True)
    assert picks("badge", pool, 1) == [0]  # the largest gradient
