"""A version's predictions on its own test set, kept so reports can draw what the metrics hide.

The metrics and the confusion matrix say how often a version is right; its scores say how sure
it was, which is what a reliability diagram, a score histogram and the list of confident
mistakes need. Training writes them next to the metrics (``test_predictions.npz``); a report
reads them back. Per document they hold its id, its gold labels, the labels decided, and the
``TOP_SCORES`` best scores with their labels (every score when a classifier has that few
labels): enough for every figure, and bounded for classifiers with thousands of labels.

The file is an ``.npz`` of numeric arrays plus JSON metadata, loaded with
``allow_pickle=False``: safe to read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tagloop.domain.records import Mode

FORMAT = 1
TEST_PREDICTIONS = "test_predictions.npz"
"""Its file name in a version's artifact folder, beside ``model.npz`` and the confusion matrix."""
TOP_SCORES = 20
"""Scores kept per document: the best ones (all of them for up to this many labels)."""


class UnreadablePredictions(ValueError):
    """The stored bytes are not a test-predictions file this code can read."""


def _ragged(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of label indices as CSR parts (row starts, indices)."""
    starts = np.zeros(len(rows) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(row) for row in rows])
    flat = np.fromiter((i for row in rows for i in row), dtype=np.int32, count=int(starts[-1]))
    return starts, flat


def _rows(starts: np.ndarray, flat: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in flat[starts[n] : starts[n + 1]]) for n in range(len(starts) - 1)]


@dataclass(frozen=True)
class TestPredictions:
    """A version's scored test documents, in document id order.

    ``labels`` is the evaluation's label universe (the model's labels, then labels only the
    test set has); ``gold``, ``predicted`` and ``top_labels`` index into it.
    """

    __test__ = False  # not a pytest class, whatever its name

    mode: Mode
    labels: list[str]
    document_ids: np.ndarray  # (n,) int64
    gold: list[tuple[int, ...]]
    predicted: list[tuple[int, ...]]
    top_labels: np.ndarray  # (n, k) int32, best first
    top_scores: np.ndarray  # (n, k) float32

    def __len__(self) -> int:
        return len(self.document_ids)

    # ---- building (at evaluation) ----------------------------------------------------
    @classmethod
    def build(
        cls,
        mode: Mode,
        labels: Sequence[str],
        document_ids: Sequence[int],
        gold: Sequence[Sequence[str]],
        chunks: Iterable[tuple[np.ndarray, list[list[int]]]],
    ) -> TestPredictions:
        """From ``recipes.base.predict``'s (scores, picks) chunks over the documents in
        ``document_ids`` order; score columns are the first labels of ``labels``."""
        return cls.from_top(
            mode, labels, document_ids, gold, ((*top_scores(scores), picks) for scores, picks in chunks)
        )

    @classmethod
    def from_top(
        cls,
        mode: Mode,
        labels: Sequence[str],
        document_ids: Sequence[int],
        gold: Sequence[Sequence[str]],
        chunks: Iterable[tuple[np.ndarray, np.ndarray, list[list[int]]]],
    ) -> TestPredictions:
        """Like :meth:`build`, from chunks already cut to :func:`top_scores` (label indices,
        scores, picks): what training keeps while it evaluates, so a large test set's full
        score matrix is never held."""
        index = {label: i for i, label in enumerate(labels)}
        tops: list[np.ndarray] = []
        kept: list[np.ndarray] = []
        predicted: list[tuple[int, ...]] = []
        for best_labels, best_scores, picks in chunks:
            tops.append(best_labels)
            kept.append(best_scores)
            predicted.extend(tuple(pick) for pick in picks)
        width = min(TOP_SCORES, len(labels))
        return cls(
            mode,
            list(labels),
            np.asarray(document_ids, dtype=np.int64),
            [tuple(index[label] for label in doc if label in index) for doc in gold],
            predicted,
            np.concatenate(tops) if tops else np.zeros((0, width), dtype=np.int32),
            np.concatenate(kept) if kept else np.zeros((0, width), dtype=np.float32),
        )

    # ---- what the figures read ---------------------------------------------------------
    def best_scores(self) -> np.ndarray:
        """Each document's highest score."""
        return self.top_scores[:, 0].astype(np.float64) if len(self) else np.zeros(0)

    def correct(self) -> np.ndarray:
        """Whether each document's decided labels equal its gold labels exactly."""
        return np.array(
            [set(p) == set(g) for p, g in zip(self.predicted, self.gold, strict=True)], dtype=bool
        )

    def calibration_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(score, outcome) pairs a reliability diagram bins. Multi-class: each document's best
        score and whether that label is right; multi-label: every kept (document, label) score
        and whether the label is one of the document's gold labels."""
        if self.mode is Mode.MULTI_CLASS or not len(self):
            gold_sets = [set(g) for g in self.gold]
            hits = np.array([int(top) in g for top, g in zip(self.top_labels[:, 0], gold_sets, strict=True)])
            return self.best_scores(), hits.astype(bool)
        gold_sets = [set(g) for g in self.gold]
        outcomes = np.array(
            [[int(label) in gold_sets[n] for label in row] for n, row in enumerate(self.top_labels)],
            dtype=bool,
        )
        return self.top_scores.astype(np.float64).ravel(), outcomes.ravel()

    def scores_of(self, row: int, count: int = 3) -> list[tuple[str, float]]:
        """A document's ``count`` best (label, score) pairs."""
        return [
            (self.labels[int(label)], float(score))
            for label, score in zip(self.top_labels[row, :count], self.top_scores[row, :count], strict=True)
        ]

    def mistakes(self) -> list[int]:
        """Rows of misclassified documents, the most confident mistakes first."""
        wrong = np.flatnonzero(~self.correct())
        return [int(row) for row in wrong[np.argsort(-self.best_scores()[wrong], kind="stable")]]

    def cell(self, true_label: str, predicted_label: str) -> list[int]:
        """Rows in a confusion matrix cell: gold has ``true_label`` and the decision has
        ``predicted_label`` (multi-class: the one gold and decided label), best score first."""
        index = {label: i for i, label in enumerate(self.labels)}
        if true_label not in index or predicted_label not in index:
            return []
        t, p = index[true_label], index[predicted_label]
        rows = np.array(
            [n for n, (g, d) in enumerate(zip(self.gold, self.predicted, strict=True)) if t in g and p in d],
            dtype=np.int64,
        )
        return (
            [int(row) for row in rows[np.argsort(-self.best_scores()[rows], kind="stable")]]
            if len(rows)
            else []
        )

    # ---- the file ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        gold_starts, gold_flat = _ragged(self.gold)
        predicted_starts, predicted_flat = _ragged(self.predicted)
        meta = {"format": FORMAT, "mode": self.mode.value, "labels": self.labels}
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8),
            document_ids=self.document_ids,
            gold_starts=gold_starts,
            gold=gold_flat,
            predicted_starts=predicted_starts,
            predicted=predicted_flat,
            top_labels=self.top_labels.astype(np.int32),
            top_scores=self.top_scores.astype(np.float32),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TestPredictions:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != FORMAT:
                raise UnreadablePredictions(f"unknown test-predictions format {meta.get('format')!r}")
            found = cls(
                Mode(meta["mode"]),
                list(meta["labels"]),
                arrays["document_ids"].astype(np.int64),
                _rows(arrays["gold_starts"], arrays["gold"]),
                _rows(arrays["predicted_starts"], arrays["predicted"]),
                arrays["top_labels"].astype(np.int32),
                arrays["top_scores"].astype(np.float32),
            )
        except UnreadablePredictions:
            raise
        except Exception as exc:  # zip, npy, JSON and key errors of a damaged file
            raise UnreadablePredictions(f"{type(exc).__name__}: {exc}") from exc
        n = len(found.document_ids)
        if not (
            len(found.gold) == len(found.predicted) == len(found.top_labels) == len(found.top_scores) == n
        ):
            raise UnreadablePredictions("its arrays have different lengths")
        return found


def top_scores(scores: np.ndarray, count: int = TOP_SCORES) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``count`` best (label indices, scores), best first (ties: lower index first)."""
    scores = np.asarray(scores)
    width = min(count, scores.shape[1])
    if width < scores.shape[1]:
        candidates = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    else:
        candidates = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    picked = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -picked), axis=1)
    labels = np.take_along_axis(candidates, order, axis=1).astype(np.int32)
    return labels, np.take_along_axis(picked, order, axis=1).astype(np.float32)


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_score: float | None
    """Mean score of the pairs in the bin (None when empty)."""
    accuracy: float | None
    """Share of the bin's pairs whose outcome is right (None when empty)."""


def reliability_bins(
    scores: Sequence[float] | np.ndarray, outcomes: Sequence[bool] | np.ndarray, bins: int = 10
) -> tuple[list[ReliabilityBin], float | None]:
    """Equal-width score bins over [0, 1] and the expected calibration error (the count-weighted
    mean gap between a bin's mean score and its accuracy; None without pairs)."""
    values = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    hits = np.asarray(outcomes, dtype=bool)
    if values.shape != hits.shape:
        raise ValueError("scores and outcomes differ in length")
    slot = np.minimum((values * bins).astype(np.int64), bins - 1)
    result = []
    gap = 0.0
    for b in range(bins):
        member = slot == b
        count = int(member.sum())
        mean = float(values[member].mean()) if count else None
        accuracy = float(hits[member].mean()) if count else None
        if count:
            gap += count * abs(mean - accuracy)  # type: ignore[operator]
        result.append(ReliabilityBin(b / bins, (b + 1) / bins, count, mean, accuracy))
    return result, (gap / len(values) if len(values) else None)
