"""A model version's report: everything a person looks at to judge it, gathered in one place.

:meth:`ReportService.version_report` collects a trained version's figures — metrics, the
per-label table, the confusion matrix, its scored test documents (for the reliability
diagram, the score histogram and the most confident mistakes), the strongest features per
label, the loop's iterations and the endpoints serving it — and :func:`version_figures` draws
them (``tagloop.plots``). The console's pages, ``tagloop report`` and its HTML file all read
the same :class:`VersionReport`, so they never disagree.

The scored test documents come from the ``test_predictions.npz`` file training writes beside
the model. A version trained before that file existed gets it made on first report: its model
scores its own test documents again (a version is immutable, so the scores are the ones its
metrics came from) and the file is stored (atomically) for next time. When the model or the
test documents are gone, the report says so and leaves those figures out.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tagloop.domain.metrics import label_universe
from tagloop.domain.records import Mode, Split, VersionStatus
from tagloop.domain.test_predictions import TEST_PREDICTIONS, TestPredictions, UnreadablePredictions
from tagloop.errors import ArtifactMissing, ResourceUnavailable, TagloopError
from tagloop.plots.iterations import IterationPoint
from tagloop.recipes.base import predict
from tagloop.services.catalog import Catalog, resolve_version
from tagloop.services.model_cache import ModelCache
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.database import Database
from tagloop.storage.loops import IterationRepository, LoopRepository
from tagloop.storage.repositories import ClassifierRepository, DocumentRepository, EndpointRepository
from tagloop.storage.tables import ModelVersionRow

log = logging.getLogger(__name__)

MISCLASSIFIED = 50
"""Misclassified test documents a report lists (the most confident mistakes)."""
FEATURES = 10
"""Strongest features a report lists per label."""
ITERATIONS = 100
"""Newest iterations a report's metric-over-iterations plot shows."""
TEXT_CHARS = 600
"""A listed test document's text is cut to this many characters."""


@dataclass(frozen=True)
class TestDocument:
    """One scored test document as a report lists it."""

    __test__ = False  # not a pytest class, whatever its name

    document_id: int
    text: str | None
    """Cut to ``TEXT_CHARS``; None if the document was deleted since."""
    gold: list[str]
    predicted: list[str]
    scores: list[tuple[str, float]]
    """The best three (label, score) pairs."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "text": self.text,
            "labels": self.gold,
            "predicted": self.predicted,
            "scores": [{"label": label, "score": round(score, 6)} for label, score in self.scores],
        }


@dataclass(frozen=True)
class Figure:
    """One drawn plot: ``key`` names it (``per_label``, ``confusion``, ``reliability``,
    ``scores``, ``iterations``, ``compare``), ``svg`` is a whole SVG document whose
    ``<title>`` is ``alt``."""

    key: str
    title: str
    alt: str
    svg: str


@dataclass
class VersionReport:
    """What a report shows of one trained version. ``summary`` is the catalog's view of the
    version (``tagloop versions C V --json``: metrics, per_label, confusion_matrix, documents,
    labels, timings...)."""

    classifier: str
    version: str
    summary: dict[str, Any]
    predictions: TestPredictions | None
    misclassified: list[TestDocument]
    features: dict[str, list[tuple[str, float]]]
    iterations: list[IterationPoint]
    iteration_metric: str
    endpoints: list[str]
    champion: bool
    notes: list[str] = field(default_factory=list)
    """Why a part is missing or how it was made, for the reader."""

    @property
    def mode(self) -> Mode:
        return Mode(self.summary["mode"])

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.summary.get("metrics") or {})

    @property
    def per_label(self) -> dict[str, dict[str, float]]:
        return dict(self.summary.get("per_label") or {})

    @property
    def confusion(self) -> dict[str, Any] | None:
        return self.summary.get("confusion_matrix")

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON (``tagloop report --json``); no drawings."""
        calibration = None
        if self.predictions is not None and len(self.predictions):
            from tagloop.domain.test_predictions import reliability_bins

            bins, ece = reliability_bins(*self.predictions.calibration_pairs())
            calibration = {
                "expected_calibration_error": ece,
                "bins": [vars(b) for b in bins],
            }
        return {
            "classifier": self.classifier,
            "version": self.version,
            "summary": self.summary,
            "test_documents": len(self.predictions) if self.predictions is not None else None,
            "calibration": calibration,
            "misclassified": [doc.as_dict() for doc in self.misclassified],
            "features": {
                label: [{"feature": term, "weight": round(weight, 6)} for term, weight in terms]
                for label, terms in self.features.items()
            },
            "iterations": [vars(point) for point in self.iterations],
            "iteration_metric": self.iteration_metric,
            "endpoints": self.endpoints,
            "champion": self.champion,
            "notes": self.notes,
        }


class ReportService:
    """Reports of trained versions (read side; the one write is the test-predictions file of
    a version trained before it existed)."""

    def __init__(self, database: Database, artifacts: ArtifactStore, models: ModelCache) -> None:
        self.database = database
        self.artifacts = artifacts
        self.models = models

    def version_report(
        self,
        classifier: str,
        version: str | None = None,
        misclassified: int = MISCLASSIFIED,
        features: int = FEATURES,
    ) -> VersionReport:
        """The report of ``version`` of ``classifier`` (default: its newest trained version);
        the version must be TRAINED. ``misclassified`` and ``features`` bound the lists."""
        notes: list[str] = []
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            row = resolve_version(session, classifier_row, version)
            loop = LoopRepository(session).find(classifier_row.id)
            metric = str((loop.settings or {}).get("metric") or "F1Score") if loop is not None else "F1Score"
            points = []
            if loop is not None:
                for iteration in reversed(IterationRepository(session).list(loop.id, ITERATIONS)):
                    if iteration.status != "COMPLETED":
                        continue
                    metric = str((iteration.rule or {}).get("metric") or metric)
                    points.append(
                        IterationPoint(
                            iteration.name,
                            _figure(iteration.champion_metrics, metric),
                            _figure(iteration.challenger_metrics, metric),
                            iteration.decision == "promoted",
                        )
                    )
            endpoints = sorted(e.name for e in EndpointRepository(session).list() if e.version_id == row.id)
            champion = loop is not None and loop.active_version_id == row.id
            session.expunge(row)
        summary = Catalog(self.database).version(classifier, row.name)
        predictions = self.test_predictions(row, Mode(summary["mode"]), notes)
        listed: list[TestDocument] = []
        if predictions is not None:
            listed = self._documents(predictions, predictions.mistakes()[: max(0, misclassified)])
        return VersionReport(
            classifier=summary["classifier"],
            version=row.name,
            summary=summary,
            predictions=predictions,
            misclassified=listed,
            features=self._features(row, features, notes),
            iterations=points,
            iteration_metric=metric,
            endpoints=endpoints,
            champion=champion,
            notes=notes,
        )

    def cell_documents(
        self, classifier: str, version: str, true_label: str, predicted_label: str, limit: int = MISCLASSIFIED
    ) -> list[TestDocument]:
        """The test documents of one confusion-matrix cell (gold ``true_label``, decided
        ``predicted_label``), highest score first, at most ``limit``: a heatmap's click-through."""
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            row = resolve_version(session, classifier_row, version)
            mode = Mode(classifier_row.mode)
            session.expunge(row)
        predictions = self.test_predictions(row, mode, [])
        if predictions is None:
            raise ResourceUnavailable(
                f"the test predictions of version {row.name} are not available (its model or test "
                "documents are gone)"
            )
        return self._documents(predictions, predictions.cell(true_label, predicted_label)[: max(0, limit)])

    # ---- parts -----------------------------------------------------------------------------
    def test_predictions(self, row: ModelVersionRow, mode: Mode, notes: list[str]) -> TestPredictions | None:
        """The version's stored test predictions; made and stored if it predates them; None
        (with a note) when they cannot be had."""
        path = self.artifacts.path(f"models/{row.classifier_id}/{row.id}/{TEST_PREDICTIONS}")
        try:
            return TestPredictions.from_bytes(self.artifacts.read_bytes(path))
        except ArtifactMissing:
            pass
        except UnreadablePredictions as exc:
            log.warning(
                "test predictions of version %s (id %s) unreadable, made again: %s", row.name, row.id, exc
            )
        try:
            made = self._score_test_set(row, mode)
        except TagloopError as exc:
            notes.append(f"no scored test documents: {exc}")
            return None
        if made is None:
            notes.append("no scored test documents: the version has no test documents")
            return None
        self.artifacts.write_bytes(f"models/{row.classifier_id}/{row.id}/{TEST_PREDICTIONS}", made.to_bytes())
        notes.append(
            "the test documents were scored for this report (the version was trained before "
            "test predictions were stored)"
        )
        return made

    def _score_test_set(self, row: ModelVersionRow, mode: Mode) -> TestPredictions | None:
        if row.status != VersionStatus.TRAINED.value or row.test_dataset_id is None:
            raise ResourceUnavailable(f"version {row.name} has no test set")
        model = self.models.get(row)
        with self.database.reading() as session:
            documents = DocumentRepository(session)
            gold_rows = documents.labels(row.test_dataset_id, Split.TEST)
            if not gold_rows:
                return None
            gold = [labels for _, labels in gold_rows]
            return TestPredictions.build(
                mode,
                label_universe(list(row.labels), gold),
                [id_ for id_, _ in gold_rows],
                gold,
                predict(model, documents.texts(row.test_dataset_id, Split.TEST)),
            )

    def _documents(self, predictions: TestPredictions, rows: list[int]) -> list[TestDocument]:
        ids = [int(predictions.document_ids[r]) for r in rows]
        with self.database.reading() as session:
            texts = DocumentRepository(session).texts_by_id(ids)
        labels = predictions.labels
        return [
            TestDocument(
                document_id=id_,
                text=_cut(texts.get(id_)),
                gold=[labels[i] for i in predictions.gold[r]],
                predicted=[labels[i] for i in predictions.predicted[r]],
                scores=predictions.scores_of(r),
            )
            for r, id_ in zip(rows, ids, strict=True)
        ]

    def _features(
        self, row: ModelVersionRow, count: int, notes: list[str]
    ) -> dict[str, list[tuple[str, float]]]:
        if count <= 0:
            return {}
        try:
            model = self.models.get(row)
        except TagloopError as exc:
            notes.append(f"no strongest features: the model cannot be read ({exc})")
            return {}
        top = getattr(model, "top_features", None)
        if top is None:
            notes.append(f"no strongest features: recipe {row.recipe} does not list them")
            return {}
        found: dict[str, list[tuple[str, float]]] = top(count)
        return found


def _figure(metrics: dict[str, Any] | None, metric: str) -> float | None:
    value = (metrics or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= TEXT_CHARS:
        return text
    return text[: TEXT_CHARS - 1] + "…"


# ---- drawings -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PlotSpec:
    """A plot a version's report has, before it is drawn: ``draw()`` makes its SVG (~0.1-0.5 s),
    so a page can list every plot's title and alt text and draw each one only when its image
    URL is asked for."""

    key: str
    title: str
    alt: str
    draw: Callable[[], str]


def version_figures(report: VersionReport) -> list[Figure]:
    """Every plot of a version's report, drawn, in reading order (:func:`version_plots`)."""
    return [Figure(spec.key, spec.title, spec.alt, spec.draw()) for spec in version_plots(report)]


def version_plots(report: VersionReport) -> list[PlotSpec]:
    """Every plot of a version's report, in reading order: per-label bars, the confusion
    heatmap (multi-class), the reliability diagram, the score histogram, and the metric over
    the loop's iterations (when it has any); none drawn yet."""
    from tagloop.plots.confusion import confusion_heatmap, confusion_summary
    from tagloop.plots.iterations import metric_over_iterations
    from tagloop.plots.per_label import per_label_bars
    from tagloop.plots.reliability import reliability_diagram
    from tagloop.plots.scores import score_histogram

    where = f"{report.classifier} {report.version}"
    drawn: list[PlotSpec] = []

    def add(key: str, title: str, alt: str, draw: Callable[[], str]) -> None:
        drawn.append(PlotSpec(key, title, alt, draw))

    if report.per_label:
        alt = f"Precision, recall and F1 per label of {where}."
        add(
            "per_label",
            "Precision, recall and F1 per label",
            alt,
            functools.partial(per_label_bars, report.per_label, alt),
        )
    confusion = report.confusion
    if confusion is not None and confusion.get("type") == "multi_class":
        labels, matrix = confusion["labels"], confusion["confusion_matrix"]
        alt = f"{where}: {confusion_summary(labels, matrix)}"
        add("confusion", "Confusion matrix", alt, functools.partial(confusion_heatmap, labels, matrix, alt))
    predictions = report.predictions
    if predictions is not None and len(predictions):
        scores, outcomes = predictions.calibration_pairs()
        what = "best score of each test document" if report.mode is Mode.MULTI_CLASS else "test label scores"
        from tagloop.domain.test_predictions import reliability_bins

        _, ece = reliability_bins(scores, outcomes)
        alt = (
            f"Reliability diagram of {where} ({what}, {len(scores):,} scores): expected calibration "
            f"error {ece:.3f}."
            if ece is not None
            else f"Reliability diagram of {where}."
        )
        add(
            "reliability",
            "Reliability: scores against the share right",
            alt,
            functools.partial(reliability_diagram, scores, outcomes, alt=alt),
        )
        right = predictions.correct()
        alt = (
            f"Histogram of the best score of {len(right):,} test documents of {where}: "
            f"{int(right.sum()):,} right, {int((~right).sum()):,} wrong."
        )
        add(
            "scores",
            "Best scores, right and wrong",
            alt,
            functools.partial(score_histogram, predictions.best_scores(), right, alt=alt),
        )
    if report.iterations:
        promoted = sum(p.promoted for p in report.iterations)
        alt = (
            f"{report.iteration_metric} of champion and challenger over {len(report.iterations)} "
            f"iterations of {report.classifier}, {promoted} promoted."
        )
        add(
            "iterations",
            f"{report.iteration_metric} over the loop's iterations",
            alt,
            functools.partial(metric_over_iterations, report.iterations, report.iteration_metric, alt),
        )
    return drawn


def compare_figures(first: VersionReport, second: VersionReport) -> list[Figure]:
    """The plot of two versions side by side: F1 per label, largest change first."""
    from tagloop.plots.per_label import per_label_comparison

    if not first.per_label or not second.per_label:
        return []
    alt = f"F1 per label of {first.classifier} {first.version} and {second.version}, largest change first."
    return [
        Figure(
            "compare",
            f"F1 per label: {first.version} and {second.version}",
            alt,
            per_label_comparison(first.version, first.per_label, second.version, second.per_label, alt),
        )
    ]
