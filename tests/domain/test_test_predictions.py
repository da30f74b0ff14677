"""A version's scored test documents: what they keep, what the figures read, and their file."""

from __future__ import annotations

import numpy as np
import pytest

from tagloop.domain.records import Mode
from tagloop.domain.test_predictions import (
    TOP_SCORES,
    TestPredictions,
    UnreadablePredictions,
    reliability_bins,
    top_scores,
)

LABELS = ["A", "B", "C"]


def _three_documents() -> TestPredictions:
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.05, 0.9, 0.05]])
    picks = [[0], [2], [1]]
    return TestPredictions.build(
        Mode.MULTI_CLASS, LABELS, [11, 12, 13], [["A"], ["B"], ["B"]], [(scores, picks)]
    )


def test_top_scores_keep_the_best_first_and_break_ties_by_label_order():
    labels, scores = top_scores(np.array([[0.2, 0.5, 0.2, 0.1]]), count=3)
    assert labels.tolist() == [[1, 0, 2]]
    assert scores[0].tolist() == pytest.approx([0.5, 0.2, 0.2])


def test_many_labels_keep_only_the_best_scores():
    scores = np.random.default_rng(0).random((5, 50))
    labels, kept = top_scores(scores)
    assert labels.shape == kept.shape == (5, TOP_SCORES)
    assert kept[:, 0].tolist() == pytest.approx(scores.max(axis=1).tolist())
    assert np.all(np.diff(kept, axis=1) <= 0)


def test_what_the_figures_read():
    found = _three_documents()
    assert found.correct().tolist() == [True, False, True]
    assert found.best_scores().tolist() == pytest.approx([0.7, 0.6, 0.9])
    scores, outcomes = found.calibration_pairs()
    assert outcomes.tolist() == [True, False, True] and scores.tolist() == pytest.approx([0.7, 0.6, 0.9])
    assert found.mistakes() == [1]
    assert found.cell("B", "C") == [1] and found.cell("B", "B") == [2] and found.cell("A", "nope") == []
    assert found.scores_of(1, 2) == [("C", pytest.approx(0.6)), ("B", pytest.approx(0.3))]


def test_multi_label_calibration_pairs_are_label_scores():
    scores = np.array([[0.9, 0.8, 0.1]])
    found = TestPredictions.build(Mode.MULTI_LABEL, LABELS, [1], [["A", "C"]], [(scores, [[0, 1]])])
    values, outcomes = found.calibration_pairs()
    assert values.tolist() == pytest.approx([0.9, 0.8, 0.1])
    assert outcomes.tolist() == [True, False, True]
    assert found.correct().tolist() == [False]


def test_the_file_round_trips_and_a_damaged_one_is_refused():
    found = _three_documents()
    again = TestPredictions.from_bytes(found.to_bytes())
    assert again.labels == LABELS and again.document_ids.tolist() == [11, 12, 13]
    assert again.gold == found.gold and again.predicted == found.predicted
    assert np.array_equal(again.top_scores, found.top_scores)
    with pytest.raises(UnreadablePredictions):
        TestPredictions.from_bytes(found.to_bytes()[:-20])
    with pytest.raises(UnreadablePredictions):
        TestPredictions.from_bytes(b"not a zip")


def test_gold_labels_the_model_never_learnt_are_kept_in_the_universe():
    scores = np.array([[0.6, 0.4]])
    found = TestPredictions.build(Mode.MULTI_CLASS, ["A", "B", "NEW"], [1], [["NEW"]], [(scores, [[0]])])
    assert found.gold == [(2,)] and found.correct().tolist() == [False]


def test_reliability_bins_and_calibration_error():
    bins, ece = reliability_bins([0.05, 0.15, 0.95, 0.95, 1.0], [False, False, True, True, False], bins=10)
    assert [b.count for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert bins[9].accuracy == pytest.approx(2 / 3) and bins[9].mean_score == pytest.approx(2.9 / 3)
    assert bins[2].accuracy is None
    # |0.05-0| + |0.15-0| + 3 * |0.9667-0.6667|, over 5
    assert ece == pytest.approx((0.05 + 0.15 + 3 * abs(2.9 / 3 - 2 / 3)) / 5)
    assert reliability_bins([], [])[1] is None
    with pytest.raises(ValueError):
        reliability_bins([0.5], [True, False])
