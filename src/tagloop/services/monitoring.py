"""Production monitoring: does what an endpoint sees still look like what its model learnt?

Per endpoint and UTC day, from the prediction log (aggregated in SQL: ``storage/monitoring.py``):

- the distribution of the predicted best labels and the histogram of the best scores
  (``domain.drift.SCORE_BINS`` bins), each compared (PSI, chi-squared: ``domain/drift.py``) with
  the **training data's** (the training ``label_counts`` of the version that answered most of
  that day's predictions, and the best scores of its test documents, read from the test
  predictions training stored (scored here only for a version older than them), kept in the
  artifact store as ``models/<classifier_id>/<version_id>/reference.json``),
  so a day before a promotion is not judged by the new model's data, and with the
  **previous day's**;
- the share of predictions the routing policy sent to review (routed tasks / predictions);
- how often reviewers agreed with the model (answers that kept the model's labels, by the
  day of the prediction reviewed).

A day with at least ``min_count`` predictions whose PSI against the training data reaches
``psi_threshold`` (labels or scores) is flagged as drifted; :meth:`MonitoringService.tick` (a
part of the loop ticker) records a ``drift.detected`` event once per endpoint and day, and
refreshes the figures the Prometheus gauges show (``api/metrics.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from tagloop.domain import drift
from tagloop.domain.records import Mode, Split
from tagloop.domain.routing import Reason
from tagloop.domain.test_predictions import TEST_PREDICTIONS, TestPredictions, UnreadablePredictions
from tagloop.errors import ArtifactCorrupt, ArtifactMissing, InvalidRequest
from tagloop.recipes.base import chunks
from tagloop.services.model_cache import ModelCache
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.database import Database
from tagloop.storage.events import EventRepository
from tagloop.storage.monitoring import DRIFT_EVENT, MonitoringRepository
from tagloop.storage.repositories import DocumentRepository, EndpointRepository
from tagloop.storage.tables import ClassifierRow, EndpointRow, ModelVersionRow, utcnow

log = logging.getLogger(__name__)

MAX_DAYS = 90
"""The most days one report covers."""
ROUTED_REASONS = (Reason.LOW_CONFIDENCE, Reason.MARGIN, Reason.LABEL, Reason.AUDIT)
"""Why a routing policy sends a prediction to review (feedback and other tasks are not routed)."""
NO_LABEL = "(none)"
"""The label bin of predictions with no best label (a multi-label model that chose none)."""
REFERENCE_FORMAT = 1
SCORE_CHUNK = 2_000


def _day(value: date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


@dataclass
class _Window:
    """One endpoint's predictions of one day, as the queries found them."""

    day: str
    labels: dict[str, int]
    scores: list[int]
    routed: int = 0
    answers: int = 0
    accepted: int = 0
    versions: dict[int, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.labels.values())

    @property
    def version_id(self) -> int | None:
        """The version that answered most of the day's predictions (the day's reference)."""
        if not self.versions:
            return None
        return max(self.versions.items(), key=lambda item: (item[1], item[0]))[0]


class MonitoringService:
    def __init__(
        self,
        database: Database,
        artifacts: ArtifactStore,
        models: ModelCache,
        psi_threshold: float = 0.2,
        min_count: int = 100,
        refresh_seconds: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.artifacts = artifacts
        self.models = models
        self.psi_threshold = psi_threshold
        self.min_count = min_count
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._references: dict[tuple[int, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}
        self._latest_at: float | None = None
        self._ticked_at: float | None = None
        self._refreshing: threading.Thread | None = None
        self._monotonic: Callable[[], float] = time.monotonic

    # ---- the reference: what the serving version learnt from ------------------------------
    def reference(self, version: ModelVersionRow, mode: Mode) -> dict[str, Any]:
        """The version's training label counts and the best-score histogram of its test
        documents (built once per version, see :meth:`_compute_reference`, then read from
        the artifact store)."""
        key = (version.id, version.artifact_sha256 or "")
        with self._lock:
            cached = self._references.get(key)
        if cached is not None:
            return cached
        path = self.artifacts.path(f"models/{version.classifier_id}/{version.id}/reference.json")
        found: dict[str, Any] | None = None
        try:
            loaded = orjson.loads(self.artifacts.read_bytes(path))
            if (
                isinstance(loaded, dict)
                and loaded.get("format") == REFERENCE_FORMAT
                and loaded.get("model_sha256") == version.artifact_sha256
            ):
                found = loaded
        except (ArtifactMissing, ArtifactCorrupt, orjson.JSONDecodeError):
            found = None
        if found is None:
            found = self._compute_reference(version, mode)
            stored = self.artifacts.write_bytes(
                f"models/{version.classifier_id}/{version.id}/reference.json", orjson.dumps(found)
            )
            log.info("reference of version %s written to %s", version.name, stored.path)
        with self._lock:
            self._references[key] = found
        return found

    def _compute_reference(self, version: ModelVersionRow, mode: Mode) -> dict[str, Any]:
        """The reference of a version, built from the best scores of its test documents.

        Those come from the version's stored test predictions (``test_predictions.npz``, which
        training writes at evaluation, or a report writes for an older version): no model is
        loaded and nothing is scored. Only a version without a readable file (trained before
        they were stored, or its file damaged) has its test set scored here, in this process.
        Both give the same histogram, but for a score within float32 rounding (1e-7) of a bin
        edge: the file keeps scores as float32."""
        scores = self._stored_top_scores(version, mode)
        if scores is None:
            scores = self._scored_top_scores(version, mode)
        histogram = [0] * drift.SCORE_BINS
        for score in scores:
            histogram[drift.score_bin(score)] += 1
        return {
            "format": REFERENCE_FORMAT,
            "version": version.name,
            "version_id": version.id,
            "model_sha256": version.artifact_sha256,
            "label_counts": dict(version.label_counts or {}),
            "test_documents": len(scores),
            "score_histogram": histogram,
        }

    def _stored_top_scores(self, version: ModelVersionRow, mode: Mode) -> list[float] | None:
        """The best scores of the version's test documents from its stored test predictions;
        None when it has no readable file."""
        path = self.artifacts.path(f"models/{version.classifier_id}/{version.id}/{TEST_PREDICTIONS}")
        try:
            stored = TestPredictions.from_bytes(self.artifacts.read_bytes(path))
        except ArtifactMissing:
            return None
        except (ArtifactCorrupt, UnreadablePredictions) as exc:
            log.warning(
                "test predictions of version %s unreadable, its test set is scored: %s", version.name, exc
            )
            return None
        return _stored_scores(stored, mode)

    def _scored_top_scores(self, version: ModelVersionRow, mode: Mode) -> list[float]:
        """The best scores of the version's test documents, scored now (the model is loaded
        only when there is a document to score)."""
        found: list[float] = []
        if version.test_dataset_id is None or not version.artifact_path:
            return found
        with self.database.reading() as session:
            texts = DocumentRepository(session).texts(version.test_dataset_id, Split.TEST.value)
            for chunk in chunks(texts, SCORE_CHUNK):
                model = self.models.get(version)
                found.extend(_top_scores(model.scores(chunk), model.decide, mode))
        log.info("the test set of version %s was scored for its reference", version.name)
        return found

    # ---- reports ---------------------------------------------------------------------------
    def report(self, endpoint: str, days: int = 7) -> dict[str, Any]:
        """The endpoint's last ``days`` UTC days (today included), oldest first: counts,
        distributions, comparisons, routed share, reviewers' agreement, drift flag."""
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise InvalidRequest(f"days: expected a whole number from 1 to {MAX_DAYS}, got {days!r}")
        with self.database.reading() as session:
            row = EndpointRepository(session).get(endpoint)
            return self._report(session, row, days)

    def _report(self, session: Any, endpoint: EndpointRow, days: int) -> dict[str, Any]:
        version = session.get(ModelVersionRow, endpoint.version_id)
        classifier = session.get(ClassifierRow, endpoint.classifier_id)
        mode = Mode(classifier.mode) if classifier is not None else Mode.MULTI_CLASS
        references: dict[int, tuple[str, dict[str, Any] | None]] = {}

        def reference_of(version_id: int | None) -> tuple[str | None, dict[str, Any] | None]:
            """The name and reference of a version (None: gone, or its model file gone)."""
            if version_id is None:
                return None, None
            if version_id not in references:
                row = session.get(ModelVersionRow, version_id)
                found: dict[str, Any] | None = None
                if row is not None:
                    try:
                        found = self.reference(row, mode)
                    except Exception as exc:  # a model file gone: report the rest, say why
                        log.warning("no reference for version %s: %s", row.name, exc)
                references[version_id] = (row.name if row is not None else str(version_id), found)
            return references[version_id]

        _, reference = reference_of(version.id if version is not None else None)
        today = self.clock().astimezone(UTC).date()
        first = today - timedelta(days=days - 1)
        windows = self._windows(session, endpoint, first - timedelta(days=1), today)
        recorded = MonitoringRepository(session).drift_windows(
            endpoint.name, [window.day for window in windows[1:]]
        )
        items = []
        for index in range(1, len(windows)):
            window = windows[index]
            # each day against what the version that answered it learnt (the serving one on a
            # day with no prediction)
            day_version, day_reference = (
                reference_of(window.version_id)
                if window.version_id is not None
                else (version.name if version is not None else None, reference)
            )
            figures = self._figures(window, windows[index - 1], day_reference)
            figures["version"] = day_version
            figures["event"] = window.day in recorded
            items.append(figures)
        flagged = [item for item in items if item["predictions"] >= self.min_count]
        return {
            "endpoint": endpoint.name,
            "classifier": classifier.name if classifier is not None else None,
            "version": version.name if version is not None else None,
            "psi_threshold": self.psi_threshold,
            "min_count": self.min_count,
            "reference": None
            if reference is None
            else {
                "version": reference["version"],
                "training_documents": sum(reference["label_counts"].values()),
                "label_counts": reference["label_counts"],
                "test_documents": reference["test_documents"],
                "score_histogram": reference["score_histogram"],
            },
            "drift": bool(flagged and flagged[-1]["drift"]),
            "days": items,
        }

    def _windows(self, session: Any, endpoint: EndpointRow, first: date, last: date) -> list[_Window]:
        """Every day from ``first`` to ``last`` (even those with no prediction)."""
        start, end = _day(first), _day(last + timedelta(days=1))
        repo = MonitoringRepository(session)
        windows: dict[str, _Window] = {}
        day = first
        while day <= last:
            windows[day.isoformat()] = _Window(day.isoformat(), {}, [0] * drift.SCORE_BINS)
            day += timedelta(days=1)
        for key, version_id, label, bin_, count in repo.predictions(endpoint.name, start, end):
            window = windows.get(key)
            if window is None:
                continue
            if version_id is not None:
                window.versions[version_id] = window.versions.get(version_id, 0) + count
            name = NO_LABEL if label is None else label
            window.labels[name] = window.labels.get(name, 0) + count
            if bin_ >= 0:
                window.scores[bin_] += count
        reasons = [reason.value for reason in ROUTED_REASONS]
        for key, count in repo.routed(endpoint.name, endpoint.classifier_id, reasons, start, end).items():
            if key in windows:
                windows[key].routed = count
        for key, (answers, accepted) in repo.agreement(
            endpoint.name, endpoint.classifier_id, start, end
        ).items():
            if key in windows:
                windows[key].answers, windows[key].accepted = answers, accepted
        return list(windows.values())

    def _figures(
        self, window: _Window, previous: _Window, reference: dict[str, Any] | None
    ) -> dict[str, Any]:
        count = window.count
        labels = dict(sorted(window.labels.items(), key=lambda item: (-item[1], item[0])))
        scored = sum(window.scores)
        current_labels = window.labels if count else None
        current_scores = window.scores if scored else None
        training = {
            "labels": drift.compare(reference["label_counts"] if reference else None, current_labels),
            "scores": drift.compare(
                reference["score_histogram"] if reference and reference["test_documents"] else None,
                current_scores,
            ),
        }
        before = {
            "labels": drift.compare(previous.labels if previous.count else None, current_labels),
            "scores": drift.compare(previous.scores if sum(previous.scores) else None, current_scores),
        }
        return {
            "day": window.day,
            "predictions": count,
            "labels": labels,
            "score_histogram": list(window.scores),
            "vs_training": {what: comparison.to_dict() for what, comparison in training.items()},
            "vs_previous": {what: comparison.to_dict() for what, comparison in before.items()},
            "routed": window.routed,
            "routed_share": round(window.routed / count, 6) if count else None,
            "answers": window.answers,
            "accepted": window.accepted,
            "agreement": round(window.accepted / window.answers, 6) if window.answers else None,
            "drift": drift.drifted(training.values(), count, self.psi_threshold, self.min_count),
        }

    # ---- the ticker's part: events and gauges ----------------------------------------------
    def tick(self) -> None:
        """For every endpoint: yesterday and today, a ``drift.detected`` event for each flagged
        day that has none yet, and the figures of the gauges. Runs at most once per
        ``refresh_seconds`` in a process; safe when several processes run it (the events of an
        endpoint are checked and recorded under a lock on its row)."""
        now = self._monotonic()
        with self._lock:  # its own clock: a gauges' refresh (no events) never holds the events back
            if self._ticked_at is not None and now - self._ticked_at < self.refresh_seconds:
                return
            self._ticked_at = now
        self.run()

    def run(self, record_events: bool = True) -> dict[str, dict[str, Any]]:
        """Monitor every endpoint now (yesterday and today); returns the gauges' figures."""
        with self.database.reading() as session:
            endpoints = [(row.name, row.id) for row in EndpointRepository(session).list()]
        latest: dict[str, dict[str, Any]] = {}
        for name, endpoint_id in endpoints:
            try:
                found = self.report(name, days=2)
            except Exception:  # one endpoint's trouble (deleted meanwhile, model gone) stops no other
                log.exception("monitoring endpoint %s failed", name)
                continue
            latest[name] = _gauges(found, self.min_count)
            if record_events:
                for item in found["days"]:
                    if item["drift"] and not item["event"]:
                        self._record(name, endpoint_id, found, item)
        with self._lock:
            self._latest = latest
            self._latest_at = self._monotonic()
        return latest

    def _record(self, name: str, endpoint_id: int, found: dict[str, Any], item: dict[str, Any]) -> None:
        with self.database.transaction() as session:
            repo = MonitoringRepository(session)
            if not repo.lock_endpoint(endpoint_id):
                return
            if repo.drift_windows(name, [item["day"]]):
                return  # another process recorded it meanwhile
            endpoint = session.get(EndpointRow, endpoint_id)
            payload = {
                "endpoint": name,
                "classifier": found["classifier"],
                "version": item["version"] or found["version"],  # the version that answered that day
                "window": item["day"],
                "predictions": item["predictions"],
                "psi_threshold": self.psi_threshold,
                "vs_training": item["vs_training"],
                "vs_previous": item["vs_previous"],
            }
            EventRepository(session).add(
                DRIFT_EVENT,
                payload,
                classifier_id=endpoint.classifier_id if endpoint is not None else None,
                endpoint=name,
            )
        log.warning(
            "drift detected on endpoint %s on %s: PSI labels %s, scores %s (threshold %s)",
            name,
            item["day"],
            item["vs_training"]["labels"]["psi"],
            item["vs_training"]["scores"]["psi"],
            self.psi_threshold,
        )

    def latest(self) -> dict[str, dict[str, Any]]:
        """The gauges' figures of the last run in this process (no database access). When
        they are older than ``refresh_seconds`` (or none), a background thread refreshes
        them for the next scrape, without recording events (the ticker does that)."""
        with self._lock:
            stale = self._latest_at is None or self._monotonic() - self._latest_at >= self.refresh_seconds
            if stale and (self._refreshing is None or not self._refreshing.is_alive()):
                self._refreshing = threading.Thread(
                    target=self._refresh, name="tagloop-monitoring", daemon=True
                )
                self._refreshing.start()
            return dict(self._latest)

    def _refresh(self) -> None:
        try:
            self.run(record_events=False)
        except Exception:  # the database may be away: the next scrape tries again
            log.exception("refreshing the monitoring gauges failed")


def _top_scores(
    scores: np.ndarray, decide: Callable[[np.ndarray], list[list[int]]], mode: Mode
) -> list[float]:
    """The best score of each row as the prediction log records it: the highest class score
    (multi-class), the score of the first label chosen (multi-label; none chosen: left out)."""
    if scores.shape[0] == 0:
        return []
    if mode is Mode.MULTI_CLASS:
        return [float(value) for value in scores.max(axis=1)]
    return [float(scores[row, picks[0]]) for row, picks in enumerate(decide(scores)) if picks]


def _stored_scores(stored: TestPredictions, mode: Mode) -> list[float] | None:
    """:func:`_top_scores` of stored test predictions; None when a document's first decided
    label is not among its kept scores (a multi-label decision of more labels than are kept)."""
    if mode is Mode.MULTI_CLASS:
        return [float(value) for value in stored.best_scores()]
    found: list[float] = []
    for row, picks in enumerate(stored.predicted):
        if not picks:
            continue
        kept = np.flatnonzero(stored.top_labels[row] == picks[0])
        if not len(kept):
            return None
        found.append(float(stored.top_scores[row, kept[0]]))
    return found


def _gauges(found: dict[str, Any], min_count: int) -> dict[str, Any]:
    """The figures of the gauges: today's, or yesterday's when today has fewer than
    ``min_count`` predictions and yesterday had enough."""
    days = found["days"]
    chosen = days[-1]
    if chosen["predictions"] < min_count and len(days) > 1 and days[-2]["predictions"] >= min_count:
        chosen = days[-2]
    return {
        "day": chosen["day"],
        "predictions": chosen["predictions"],
        "psi": {
            (against, what): chosen[f"vs_{against}"][what]["psi"]
            for against in ("training", "previous")
            for what in ("labels", "scores")
        },
        "drift": chosen["drift"],
        "routed_share": chosen["routed_share"],
        "agreement": chosen["agreement"],
    }
