"""Evaluation metrics (domain/metrics.py), checked against scikit-learn's own functions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)
from sklearn.preprocessing import MultiLabelBinarizer

from tagloop.domain.metrics import METRIC_NAMES, evaluate, indicator, label_universe
from tagloop.domain.records import Mode

# ---- multi-class example: "D" only appears in the gold data, "C" is never predicted -------
MODEL_LABELS = ["A", "B", "C"]
MC_GOLD = [["A"], ["A"], ["A"], ["B"], ["B"], ["C"], ["C"], ["D"], ["A"], ["B"]]
MC_PRED = [["A"], ["B"], ["A"], ["B"], ["A"], ["A"], ["B"], ["A"], ["A"], ["B"]]


def flat(docs: list[list[str]]) -> list[str]:
    return [doc[0] for doc in docs]


def test_label_universe_appends_gold_only_labels_sorted():
    assert label_universe(MODEL_LABELS, MC_GOLD) == ["A", "B", "C", "D"]
    assert label_universe(["Z", "A"], [["Q"], ["B", "Z"], ["B"]]) == ["Z", "A", "B", "Q"]
    assert label_universe(["A"], []) == ["A"]


def test_indicator_ignores_unknown_labels():
    matrix = indicator([["A", "C"], [], ["X"], ["B", "B"]], ["A", "B", "C"])
    assert matrix.tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert indicator([], ["A"]).shape == (0, 1)


@pytest.fixture(scope="module")
def multi_class():
    labels = label_universe(MODEL_LABELS, MC_GOLD)
    return labels, evaluate(Mode.MULTI_CLASS, labels, MC_GOLD, MC_PRED)


def test_multi_class_metrics_match_sklearn(multi_class):
    _, result = multi_class
    y_true, y_pred = flat(MC_GOLD), flat(MC_PRED)
    expected = {
        "Accuracy": accuracy_score(y_true, y_pred),
        "Precision": precision_score(y_true, y_pred, average="macro", zero_division=0),
        "Recall": recall_score(y_true, y_pred, average="macro", zero_division=0),
        "F1Score": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "MicroPrecision": precision_score(y_true, y_pred, average="micro", zero_division=0),
        "MicroRecall": recall_score(y_true, y_pred, average="micro", zero_division=0),
        "MicroF1Score": f1_score(y_true, y_pred, average="micro", zero_division=0),
        "HammingLoss": hamming_loss(y_true, y_pred),
    }
    assert set(result.metrics) == set(METRIC_NAMES)
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value), name
        assert isinstance(result.metrics[name], float)
    # hand-checked figures
    assert result.metrics["Accuracy"] == pytest.approx(0.5)
    assert result.metrics["HammingLoss"] == pytest.approx(0.5)
    assert result.documents == 10


def test_multi_class_per_label_matches_sklearn(multi_class):
    labels, result = multi_class
    y_true, y_pred = flat(MC_GOLD), flat(MC_PRED)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    assert list(result.per_label) == labels
    for i, label in enumerate(labels):
        figures = result.per_label[label]
        assert figures["precision"] == pytest.approx(precision[i]), label
        assert figures["recall"] == pytest.approx(recall[i]), label
        assert figures["f1"] == pytest.approx(f1[i]), label
        assert figures["support"] == support[i]
        assert isinstance(figures["support"], int)
    assert {label: result.per_label[label]["support"] for label in labels} == {"A": 4, "B": 3, "C": 2, "D": 1}
    assert result.per_label["D"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_multi_class_confusion_matrix_json_shape(multi_class):
    labels, result = multi_class
    expected = confusion_matrix(flat(MC_GOLD), flat(MC_PRED), labels=labels).tolist()
    assert result.confusion_matrix == {"type": "multi_class", "confusion_matrix": expected, "labels": labels}
    # rows are gold labels, columns predicted
    assert expected[labels.index("D")] == [1, 0, 0, 0]
    assert json.loads(json.dumps(result.confusion_matrix)) == result.confusion_matrix
    matrix = np.asarray(result.confusion_matrix["confusion_matrix"])
    assert matrix.shape == (4, 4)
    assert matrix.sum() == len(MC_GOLD)
    assert np.trace(matrix) == 5


def test_multi_class_model_label_absent_from_gold_and_predictions_is_not_averaged():
    gold = [["A"], ["B"], ["A"]]
    pred = [["A"], ["A"], ["A"]]
    result = evaluate(Mode.MULTI_CLASS, ["A", "B", "UNUSED"], gold, pred)
    expected = precision_recall_fscore_support(flat(gold), flat(pred), average="macro", zero_division=0)
    assert result.metrics["Precision"] == pytest.approx(expected[0])
    assert result.metrics["Recall"] == pytest.approx(expected[1])
    assert result.metrics["F1Score"] == pytest.approx(expected[2])
    assert result.per_label["UNUSED"]["support"] == 0
    assert result.confusion_matrix["labels"] == ["A", "B", "UNUSED"]


def test_multi_class_perfect_and_all_wrong():
    gold = [["A"], ["B"], ["C"]]
    perfect = evaluate(Mode.MULTI_CLASS, ["A", "B", "C"], gold, gold)
    assert all(perfect.metrics[name] == 1.0 for name in METRIC_NAMES if name != "HammingLoss")
    assert perfect.metrics["HammingLoss"] == 0.0
    wrong = evaluate(Mode.MULTI_CLASS, ["A", "B", "C"], gold, [["B"], ["C"], ["A"]])
    assert wrong.metrics["Accuracy"] == 0.0
    assert wrong.metrics["F1Score"] == 0.0
    assert wrong.metrics["HammingLoss"] == 1.0


def test_binary_multi_class_matches_sklearn():
    gold = [["yes"], ["no"], ["yes"], ["yes"], ["no"], ["no"], ["yes"]]
    pred = [["yes"], ["yes"], ["no"], ["yes"], ["no"], ["no"], ["yes"]]
    result = evaluate(Mode.MULTI_CLASS, ["no", "yes"], gold, pred)
    y_true, y_pred = flat(gold), flat(pred)
    assert result.metrics["Accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result.metrics["F1Score"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert result.metrics["MicroF1Score"] == pytest.approx(f1_score(y_true, y_pred, average="micro"))
    assert (
        result.confusion_matrix["confusion_matrix"]
        == confusion_matrix(y_true, y_pred, labels=["no", "yes"]).tolist()
    )


# ---- multi-label example: "D" only in gold, "C" only predicted --------------------------
ML_GOLD = [["A", "B"], ["A"], ["B", "D"], ["A", "B"], ["B"], ["A", "D"], ["B"], ["A", "B"]]
ML_PRED = [["A", "B"], ["A", "C"], ["B"], ["A"], ["B", "A"], ["A"], ["C"], ["B", "A"]]


@pytest.fixture(scope="module")
def multi_label():
    labels = label_universe(MODEL_LABELS, ML_GOLD)
    binarizer = MultiLabelBinarizer(classes=labels)
    y_true = binarizer.fit_transform(ML_GOLD)
    y_pred = binarizer.transform(ML_PRED)
    return labels, y_true, y_pred, evaluate(Mode.MULTI_LABEL, labels, ML_GOLD, ML_PRED)


def test_multi_label_metrics_match_sklearn(multi_label):
    _, y_true, y_pred, result = multi_label
    expected = {
        "Accuracy": accuracy_score(y_true, y_pred),
        "Precision": precision_score(y_true, y_pred, average="macro", zero_division=0),
        "Recall": recall_score(y_true, y_pred, average="macro", zero_division=0),
        "F1Score": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "MicroPrecision": precision_score(y_true, y_pred, average="micro", zero_division=0),
        "MicroRecall": recall_score(y_true, y_pred, average="micro", zero_division=0),
        "MicroF1Score": f1_score(y_true, y_pred, average="micro", zero_division=0),
        "HammingLoss": hamming_loss(y_true, y_pred),
    }
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value), name
    # hand-checked: exact-match accuracy 2/8, 7 wrong cells of 32
    assert result.metrics["Accuracy"] == pytest.approx(2 / 8)
    assert result.metrics["HammingLoss"] == pytest.approx(7 / 32)
    assert result.documents == 8


def test_multi_label_per_label_matches_sklearn(multi_label):
    labels, y_true, y_pred, result = multi_label
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    for i, label in enumerate(labels):
        figures = result.per_label[label]
        assert figures["precision"] == pytest.approx(precision[i]), label
        assert figures["recall"] == pytest.approx(recall[i]), label
        assert figures["f1"] == pytest.approx(f1[i]), label
        assert figures["support"] == support[i], label
    assert {label: result.per_label[label]["support"] for label in labels} == {"A": 5, "B": 6, "C": 0, "D": 2}


def test_multi_label_confusion_matrix_json_shape(multi_label):
    labels, y_true, y_pred, result = multi_label
    assert result.confusion_matrix == {
        "type": "multi_label",
        "confusion_matrix": multilabel_confusion_matrix(y_true, y_pred).tolist(),
        "labels": labels,
        "cell_order": [["true_negative", "false_positive"], ["false_negative", "true_positive"]],
    }
    matrix = np.asarray(result.confusion_matrix["confusion_matrix"])
    assert matrix.shape == (4, 2, 2)
    assert (matrix.reshape(4, -1).sum(axis=1) == len(ML_GOLD)).all()
    # "D": 2 gold, never predicted → 2 false negatives, 6 true negatives
    assert matrix[labels.index("D")].tolist() == [[6, 0], [2, 0]]
    json.dumps(result.confusion_matrix)


def test_multi_label_model_label_absent_everywhere_is_not_averaged():
    gold = [["A"], ["A", "B"], ["B"]]
    pred = [["A"], ["A"], ["B"]]
    labels = ["A", "B", "UNUSED"]
    result = evaluate(Mode.MULTI_LABEL, labels, gold, pred)
    present = MultiLabelBinarizer(classes=["A", "B"])
    y_true, y_pred = present.fit_transform(gold), present.transform(pred)
    assert result.metrics["Precision"] == pytest.approx(precision_score(y_true, y_pred, average="macro"))
    assert result.metrics["Recall"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    assert result.metrics["F1Score"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    # the unused column still counts for the Hamming loss, as a correctly predicted "no"
    full = MultiLabelBinarizer(classes=labels)
    assert result.metrics["HammingLoss"] == pytest.approx(
        hamming_loss(full.fit_transform(gold), full.transform(pred))
    )
    assert result.per_label["UNUSED"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_multi_label_perfect():
    gold = [["A", "B"], ["B"], ["A"]]
    result = evaluate(Mode.MULTI_LABEL, ["A", "B"], gold, [["B", "A"], ["B"], ["A"]])
    assert result.metrics["Accuracy"] == 1.0
    assert result.metrics["HammingLoss"] == 0.0
    assert result.metrics["F1Score"] == 1.0
    assert result.metrics["MicroF1Score"] == 1.0
