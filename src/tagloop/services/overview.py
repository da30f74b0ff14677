"""What the console's pages show at a glance: every classifier with what serves it, its review
queue, its last iteration and drift; one classifier with its versions, endpoints and data; a
version's test documents as its model decides them (for the confusion matrix's cells).

A read model: a few grouped queries per page, never one query per row, so the classifiers
page costs the same with ten classifiers as with one. Nothing here writes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tagloop.domain.records import Mode, VersionStatus
from tagloop.errors import NotFound, ResourceUnavailable
from tagloop.services.catalog import version_summary
from tagloop.services.loops import PROMOTED_EVENT
from tagloop.services.reports import ReportService
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository, DocumentRepository, ModelVersionRepository
from tagloop.storage.tables import (
    ClassifierRow,
    DatasetRow,
    DocumentRow,
    EndpointRow,
    EventRow,
    IterationRow,
    LoopRow,
    ModelVersionRow,
    ReviewTaskRow,
    utcnow,
)

DRIFT_EVENT = "drift.detected"
DRIFT_DAYS = 7
"""A classifier is flagged when one of its endpoints drifted within this many days."""
PREDICTED_VERSIONS = 4
"""Versions whose test predictions are kept in memory (each a few bytes per test document)."""


@dataclass(frozen=True)
class EndpointLine:
    name: str
    version: str
    status: str
    follows: bool


@dataclass(frozen=True)
class IterationLine:
    name: str
    status: str
    decision: str | None
    reason: str | None


@dataclass
class ClassifierCard:
    """One classifier on the classifiers page."""

    name: str
    mode: str
    versions: int
    serving: str | None
    """The loop's champion, else the newest TRAINED version (what a following endpoint serves)."""
    champion: str | None
    label_counts: dict[str, int]
    """Training documents per label of the serving version."""
    endpoints: list[EndpointLine] = field(default_factory=list)
    review_queue: int = 0
    moderate_queue: int = 0
    last_iteration: IterationLine | None = None
    drift_at: str | None = None
    """When drift was last detected on one of its endpoints (within ``DRIFT_DAYS``)."""


@dataclass
class ClassifierDetail:
    card: ClassifierCard
    versions: list[dict[str, Any]]
    """``version_summary`` of each version, newest first, plus ``endpoints``: the names serving it."""
    documents: dict[str, dict[str, int]]
    """Stored documents by origin (import, review, feedback, ...) and split (train, test, pool)."""
    promotions: list[dict[str, Any]]
    sources: list[dict[str, Any]] = field(default_factory=list)
    """The datasets it was trained from, newest first: the file's name (never the server's
    folder), format, documents, when."""


SOURCES_LISTED = 20


def source_name(source: str) -> str:
    """A dataset's source as the pages show it: a file's or object's last name only (the
    folders are the server's business), other sources (``version v1``, ``loop data``) as they are."""
    if "/" not in source and "\\" not in source:
        return source
    return source.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1] or source


@dataclass(frozen=True)
class TestDocument:
    """One test document of a version: its gold labels, the model's decision and top score."""

    text: str
    actual: tuple[str, ...]
    predicted: tuple[str, ...]
    score: float


class Overview:
    def __init__(self, database: Database, reports: ReportService) -> None:
        self.database = database
        self.reports = reports
        self._predicted: OrderedDict[tuple[int, str | None], list[TestDocument]] = OrderedDict()
        self._lock = threading.Lock()

    # ---- the classifiers page --------------------------------------------------------
    def classifiers(self) -> list[ClassifierCard]:
        with self.database.reading() as session:
            rows = list(ClassifierRepository(session).list())
            return self._cards(session, rows)

    def _cards(self, session: Session, rows: list[ClassifierRow]) -> list[ClassifierCard]:
        ids = [row.id for row in rows]
        if not ids:
            return []
        versions: dict[int, list[ModelVersionRow]] = {id_: [] for id_ in ids}
        for version in session.scalars(
            select(ModelVersionRow)
            .where(ModelVersionRow.classifier_id.in_(ids))
            .order_by(ModelVersionRow.number)
        ):
            versions[version.classifier_id].append(version)
        names = {v.id: v.name for found in versions.values() for v in found}
        champions: dict[int, int | None] = {
            classifier_id: version_id
            for classifier_id, version_id in session.execute(
                select(LoopRow.classifier_id, LoopRow.active_version_id).where(LoopRow.classifier_id.in_(ids))
            )
        }
        endpoints: dict[int, list[EndpointLine]] = {id_: [] for id_ in ids}
        for endpoint in session.scalars(
            select(EndpointRow).where(EndpointRow.classifier_id.in_(ids)).order_by(EndpointRow.name)
        ):
            line = EndpointLine(
                endpoint.name, names.get(endpoint.version_id, "?"), endpoint.status, endpoint.follows
            )
            endpoints[endpoint.classifier_id].append(line)
        queues: dict[tuple[int | None, str | None], int] = {}
        for classifier_id, queue, count in session.execute(
            select(ReviewTaskRow.classifier_id, ReviewTaskRow.queue, func.count())
            .where(ReviewTaskRow.classifier_id.in_(ids), ReviewTaskRow.queue.is_not(None))
            .group_by(ReviewTaskRow.classifier_id, ReviewTaskRow.queue)
        ):
            queues[(classifier_id, queue)] = int(count)
        latest = (
            select(IterationRow.classifier_id, func.max(IterationRow.number).label("number"))
            .where(IterationRow.classifier_id.in_(ids))
            .group_by(IterationRow.classifier_id)
            .subquery()
        )
        iterations = {
            row.classifier_id: IterationLine(row.name, row.status, row.decision, row.reason)
            for row in session.scalars(
                select(IterationRow).join(
                    latest,
                    (IterationRow.classifier_id == latest.c.classifier_id)
                    & (IterationRow.number == latest.c.number),
                )
            )
        }
        since = utcnow() - timedelta(days=DRIFT_DAYS)
        drift: dict[int | None, Any] = {
            classifier_id: latest_at
            for classifier_id, latest_at in session.execute(
                select(EventRow.classifier_id, func.max(EventRow.created_at))
                .where(
                    EventRow.kind == DRIFT_EVENT,
                    EventRow.created_at >= since,
                    EventRow.classifier_id.in_(ids),
                )
                .group_by(EventRow.classifier_id)
            )
        }
        cards = []
        for row in rows:
            found = versions[row.id]
            trained = [v for v in found if v.status == VersionStatus.TRAINED.value]
            champion = next((v for v in found if v.id == champions.get(row.id)), None)
            serving = champion or (trained[-1] if trained else None)
            drifted = drift.get(row.id)
            cards.append(
                ClassifierCard(
                    name=row.name,
                    mode=row.mode,
                    versions=len(found),
                    serving=serving.name if serving else None,
                    champion=champion.name if champion else None,
                    label_counts=dict(serving.label_counts or {}) if serving else {},
                    endpoints=endpoints[row.id],
                    review_queue=queues.get((row.id, "review"), 0),
                    moderate_queue=queues.get((row.id, "moderate"), 0),
                    last_iteration=iterations.get(row.id),
                    drift_at=drifted.isoformat() if drifted is not None else None,
                )
            )
        return cards

    # ---- one classifier ----------------------------------------------------------------
    def classifier(self, name: str) -> ClassifierDetail:
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(name)
            (card,) = self._cards(session, [row])
            serving: dict[str, list[str]] = {}
            for endpoint in card.endpoints:
                serving.setdefault(endpoint.version, []).append(endpoint.name)
            versions = [
                version_summary(row, version) | {"endpoints": serving.get(version.name, [])}
                for version in reversed(ModelVersionRepository(session).list(row.id))
            ]
            documents: dict[str, dict[str, int]] = {}
            for origin, split, count in session.execute(
                select(DocumentRow.origin, DocumentRow.split, func.count())
                .where(DocumentRow.classifier_id == row.id)
                .group_by(DocumentRow.origin, DocumentRow.split)
                .order_by(DocumentRow.origin, DocumentRow.split)
            ):
                documents.setdefault(origin, {})[split] = int(count)
            promotions = [
                dict(event.payload) | {"at": event.created_at.isoformat()}
                for event in session.scalars(
                    select(EventRow)
                    .where(EventRow.kind == PROMOTED_EVENT, EventRow.classifier_id == row.id)
                    .order_by(EventRow.id.desc())
                    .limit(20)
                )
            ]
            sources = [
                {
                    "name": source_name(dataset.source),
                    "format": dataset.format,
                    "documents": dataset.documents,
                    "created_at": dataset.created_at.isoformat(),
                }
                for dataset in session.scalars(
                    select(DatasetRow)
                    .where(DatasetRow.classifier_id == row.id)
                    .order_by(DatasetRow.id.desc())
                    .limit(SOURCES_LISTED)
                )
            ]
            return ClassifierDetail(card, versions, documents, promotions, sources)

    # ---- a version's test documents -----------------------------------------------------
    def test_documents(self, classifier: str, version: str) -> list[TestDocument]:
        """The version's test documents with its model's decisions, as evaluation stored them
        (``services/reports.py``: scored once, kept beside the model); the stored confusion
        matrix counts them, this names them."""
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            row = ModelVersionRepository(session).find(classifier_row.id, version)
            if row is None:
                raise NotFound(f"classifier {classifier!r} has no version {version!r}")
            if row.status != VersionStatus.TRAINED.value or row.test_dataset_id is None:
                raise ResourceUnavailable(f"version {version} of {classifier!r} has no evaluated test set")
            key = (row.id, row.artifact_sha256)
            with self._lock:
                if key in self._predicted:
                    self._predicted.move_to_end(key)
                    return self._predicted[key]
            mode = Mode(classifier_row.mode)
            session.expunge(row)
        notes: list[str] = []
        scored = self.reports.test_predictions(row, mode, notes)
        if scored is None:
            raise ResourceUnavailable(f"version {version} of {classifier!r}: {'; '.join(notes)}")
        ids = [int(id_) for id_ in scored.document_ids]
        with self.database.reading() as session:
            texts = DocumentRepository(session).texts_by_id(ids)
        labels = scored.labels
        found = [
            TestDocument(
                texts.get(id_, ""),
                tuple(labels[i] for i in scored.gold[n]),
                tuple(labels[i] for i in scored.predicted[n]),
                float(scored.top_scores[n, 0]) if scored.top_scores.shape[1] else 0.0,
            )
            for n, id_ in enumerate(ids)
        ]
        with self._lock:
            self._predicted[key] = found
            while len(self._predicted) > PREDICTED_VERSIONS:
                self._predicted.popitem(last=False)
        return found
