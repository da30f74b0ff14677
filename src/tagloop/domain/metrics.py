"""Evaluation metrics named and shaped as Amazon Comprehend reports them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tagloop.domain.records import Mode

METRIC_NAMES = (
    "Accuracy",
    "Precision",
    "Recall",
    "F1Score",
    "MicroPrecision",
    "MicroRecall",
    "MicroF1Score",
    "HammingLoss",
)

PER_LABEL_NAMES = ("precision", "recall", "f1", "support")


@dataclass(frozen=True)
class Evaluation:
    """Metrics, per-label figures and the confusion matrix of one model on one labelled set."""

    metrics: dict[str, float]
    per_label: dict[str, dict[str, float]]
    confusion_matrix: dict[str, object]
    documents: int


def label_universe(model_labels: Sequence[str], gold: Sequence[Sequence[str]]) -> list[str]:
    """The model's labels, then any label that only appears in the gold data (sorted)."""
    known = set(model_labels)
    extra = sorted({label for doc in gold for label in doc if label not in known})
    return list(model_labels) + extra


def indicator(docs: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """A (documents × labels) 0/1 matrix; labels outside ``labels`` are ignored."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(docs), len(labels)), dtype=np.int8)
    for row, doc in enumerate(docs):
        for label in doc:
            column = index.get(label)
            if column is not None:
                matrix[row, column] = 1
    return matrix


def evaluate(
    mode: Mode,
    labels: Sequence[str],
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
) -> Evaluation:
    """Comprehend's metrics for ``predicted`` against ``gold`` over ``labels``.

    Averages run over the labels that occur in the gold or the predicted sets, as
    scikit-learn's own functions do by default; ``per_label`` lists every label in ``labels``.
    """
    # imported here: scikit-learn takes ~1 s to import, and serving or batch scoring never evaluates
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        hamming_loss,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
    )

    labels = list(labels)
    y_true = indicator(gold, labels)
    y_pred = indicator(predicted, labels)
    present = [i for i in range(len(labels)) if y_true[:, i].any() or y_pred[:, i].any()]
    if mode is Mode.MULTI_CLASS:
        true_idx = y_true.argmax(axis=1)
        pred_idx = y_pred.argmax(axis=1)
        accuracy = float(accuracy_score(true_idx, pred_idx))
        hamming = 1.0 - accuracy
        matrix = confusion_matrix(true_idx, pred_idx, labels=range(len(labels)))
        confusion: dict[str, object] = {
            "type": "multi_class",
            "confusion_matrix": matrix.tolist(),
            "labels": labels,
        }
        args: tuple[np.ndarray, np.ndarray] = (true_idx, pred_idx)
    else:
        accuracy = float(accuracy_score(y_true, y_pred))
        hamming = float(hamming_loss(y_true, y_pred))
        matrix = multilabel_confusion_matrix(y_true, y_pred, labels=range(len(labels)))
        confusion = {
            "type": "multi_label",
            "confusion_matrix": matrix.tolist(),
            "labels": labels,
            "cell_order": [["true_negative", "false_positive"], ["false_negative", "true_positive"]],
        }
        args = (y_true, y_pred)
    macro = precision_recall_fscore_support(*args, labels=present, average="macro", zero_division=0)
    micro = precision_recall_fscore_support(*args, labels=present, average="micro", zero_division=0)
    each = precision_recall_fscore_support(*args, labels=range(len(labels)), average=None, zero_division=0)
    metrics = {
        "Accuracy": accuracy,
        "Precision": float(macro[0]),
        "Recall": float(macro[1]),
        "F1Score": float(macro[2]),
        "MicroPrecision": float(micro[0]),
        "MicroRecall": float(micro[1]),
        "MicroF1Score": float(micro[2]),
        "HammingLoss": hamming,
    }
    per_label = {
        label: {
            "precision": float(each[0][i]),
            "recall": float(each[1][i]),
            "f1": float(each[2][i]),
            "support": int(each[3][i]),
        }
        for i, label in enumerate(labels)
    }
    return Evaluation(metrics, per_label, confusion, len(gold))
