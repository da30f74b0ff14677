"""The prediction record and how a score matrix becomes predictions (domain/predictions.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from tagloop.domain.predictions import Prediction, ranked
from tagloop.domain.records import Mode
from tagloop.errors import InvalidRequest

LABELS = [f"L{i}" for i in range(8)]
MC = Mode.MULTI_CLASS
ML = Mode.MULTI_LABEL


def scores_of(documents: int, seed: int = 7) -> np.ndarray:
    """Multi-class scores as a model gives them: float32 rows that sum to 1."""
    logits = np.random.default_rng(seed).normal(size=(documents, len(LABELS)))
    return softmax(logits, axis=1).astype(np.float32)


def assigned(scores: np.ndarray) -> list[list[int]]:
    """Multi-label picks as a model decides them: labels over 0.5, best first."""
    return [[int(i) for i in np.argsort(-row, kind="stable") if row[i] > 0.5] for row in scores]


def test_multi_class_lists_every_class_by_score_or_the_best_top():
    scores = scores_of(1)
    (prediction,) = ranked(LABELS, MC, scores, [[int(scores[0].argmax())]])
    assert prediction.labels == [LABELS[i] for i in np.argsort(-scores[0], kind="stable")]
    assert prediction.scores == sorted(prediction.scores, reverse=True)
    assert prediction.scores == [float(scores[0, LABELS.index(name)]) for name in prediction.labels]
    assert all(type(score) is float for score in prediction.scores)  # plain floats, not numpy's
    assert sum(prediction.scores) == pytest.approx(1.0, abs=1e-6)
    assert prediction.mode is MC and prediction.error is None
    (top,) = ranked(LABELS, MC, scores, [[]], top=2)  # the picks play no part in multi-class
    assert top == Prediction(prediction.labels[:2], prediction.scores[:2], MC)
    (every,) = ranked(LABELS, MC, scores, [[]], top=0)  # 0: no limit
    assert every == prediction


def test_classes_with_equal_scores_keep_the_labels_order():
    scores = np.array([[0.1, 0.3, 0.2, 0.3, 0.1]])
    (prediction,) = ranked(["a", "b", "c", "d", "e"], MC, scores, [[1]])
    assert prediction.labels == ["b", "d", "c", "a", "e"]
    assert prediction.scores == [0.3, 0.3, 0.2, 0.1, 0.1]


def test_multi_label_lists_the_picked_labels_in_the_picks_order():
    scores = np.linspace(0.1, 0.9, len(LABELS))[None, :]
    (prediction,) = ranked(LABELS, ML, scores, [[5, 3]])
    assert prediction == Prediction([LABELS[5], LABELS[3]], [float(scores[0, 5]), float(scores[0, 3])], ML)
    assert all(type(score) is float for score in prediction.scores)
    (top,) = ranked(LABELS, ML, scores, [(5, 3)], top=1)
    assert top.labels == prediction.labels[:1] and top.scores == prediction.scores[:1]
    (none,) = ranked(LABELS, ML, scores, [[]])
    assert none == Prediction([], [], ML) and none.error is None and none.best is None


@pytest.mark.parametrize("mode", [MC, ML])
def test_predictions_of_a_batch_are_the_predictions_of_each_row(mode):
    scores = scores_of(50) if mode is MC else np.random.default_rng(7).random((50, len(LABELS)))
    picks = assigned(scores)
    assert mode is MC or any(len(chosen) > 1 for chosen in picks)
    for top in (None, 2):
        batch = ranked(LABELS, mode, scores, picks, top)
        assert batch == [
            ranked(LABELS, mode, row[None, :], [chosen], top)[0]
            for row, chosen in zip(scores, picks, strict=True)
        ]
        assert all(type(score) is float for prediction in batch for score in prediction.scores)
    assert ranked(LABELS, mode, np.zeros((0, len(LABELS))), []) == []


def test_a_text_that_could_not_be_classified_has_no_labels_and_its_error():
    error = InvalidRequest("empty text")
    failed = Prediction.failed(ML, error)
    assert failed.labels == [] and failed.scores == [] and failed.mode is ML
    assert failed.error is error and failed.best is None
    assert Prediction(["b", "a"], [0.7, 0.2], MC).best == "b"
