"""The aggregate queries of production monitoring: per endpoint and UTC day, computed in SQL.

Every query reads one endpoint's rows in a time range through an index on (endpoint or
classifier, created_at) and returns a few rows per day, never one per prediction:
``ix_predictions_endpoint_created`` for the predictions, ``ix_review_tasks_classifier_created``
for the review tasks (and their answers); the few drift events are found by kind.
Days are UTC calendar days as ``YYYY-MM-DD`` text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, select, update
from sqlalchemy.orm import Session

from tagloop.domain.drift import SCORE_BINS, SCORE_EDGES
from tagloop.storage.tables import (
    EndpointRow,
    EventRow,
    PredictionRow,
    ReviewAnswerRow,
    ReviewTaskRow,
)

DRIFT_EVENT = "drift.detected"


def utc_day(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a ``UTCDateTime`` column as ``YYYY-MM-DD`` text (SQLite stores
    it as naive UTC text: its first 10 characters; PostgreSQL as timestamptz)."""
    if dialect == "sqlite":
        return func.substr(column, 1, 10)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def score_bin(column: Any) -> Any:
    """``domain.drift.score_bin`` in SQL (a CASE over the bin edges: the same on every database)."""
    return case(*[(column < edge, index) for index, edge in enumerate(SCORE_EDGES)], else_=SCORE_BINS - 1)


class MonitoringRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    def predictions_query(self, endpoint: str, start: datetime, end: datetime) -> Select[Any]:
        """The query of :meth:`predictions` (its plan is checked by the tests)."""
        day = utc_day(PredictionRow.created_at, self.dialect).label("day")
        bin_ = case((PredictionRow.top_score.is_(None), -1), else_=score_bin(PredictionRow.top_score))
        return (
            select(day, PredictionRow.version_id, PredictionRow.top_label, bin_.label("bin"), func.count())
            .where(
                PredictionRow.endpoint == endpoint,
                PredictionRow.created_at >= start,
                PredictionRow.created_at < end,
            )
            .group_by(day, PredictionRow.version_id, PredictionRow.top_label, bin_)
        )

    def predictions(
        self, endpoint: str, start: datetime, end: datetime
    ) -> list[tuple[str, int | None, str | None, int, int]]:
        """(day, version id, best label, score bin, count) of the endpoint's predictions logged
        in [start, end); a prediction without a best label (a multi-label one that chose none)
        has label None and bin -1. One scan of the index range."""
        rows = self.session.execute(self.predictions_query(endpoint, start, end))
        return [(str(d), v, label, int(b), int(n)) for d, v, label, b, n in rows]

    def routed(
        self, endpoint: str, classifier_id: int, reasons: Iterable[str], start: datetime, end: datetime
    ) -> dict[str, int]:
        """Review tasks created per day in [start, end) for the endpoint's predictions that its
        routing policy sent to review (tasks with one of ``reasons``)."""
        day = utc_day(ReviewTaskRow.created_at, self.dialect).label("day")
        query = (
            select(day, func.count())
            .where(
                ReviewTaskRow.classifier_id == classifier_id,
                ReviewTaskRow.created_at >= start,
                ReviewTaskRow.created_at < end,
                ReviewTaskRow.endpoint == endpoint,
                ReviewTaskRow.reason.in_(list(reasons)),
            )
            .group_by(day)
        )
        return {str(d): int(n) for d, n in self.session.execute(query)}

    def agreement(
        self, endpoint: str, classifier_id: int, start: datetime, end: datetime
    ) -> dict[str, tuple[int, int]]:
        """Per day a task of the endpoint was created in [start, end) (the day of the prediction
        it reviews): the answers given to it that say whether they took the model's labels, and
        how many did (``accepted``)."""
        day = utc_day(ReviewTaskRow.created_at, self.dialect).label("day")
        accepted = func.sum(case((ReviewAnswerRow.accepted.is_(True), 1), else_=0))
        query = (
            select(day, func.count(), accepted)
            .select_from(ReviewTaskRow)
            .join(
                ReviewAnswerRow,
                and_(ReviewAnswerRow.task_id == ReviewTaskRow.id, ReviewAnswerRow.accepted.is_not(None)),
            )
            .where(
                ReviewTaskRow.classifier_id == classifier_id,
                ReviewTaskRow.created_at >= start,
                ReviewTaskRow.created_at < end,
                ReviewTaskRow.endpoint == endpoint,
                ReviewAnswerRow.status == "answered",
            )
            .group_by(day)
        )
        return {str(d): (int(n), int(a or 0)) for d, n, a in self.session.execute(query)}

    def drift_windows(self, endpoint: str, windows: Iterable[str]) -> set[str]:
        """Which of ``windows`` (days) of the endpoint have a ``drift.detected`` event (a few
        per endpoint at most: one per drifted day; read through ``ix_events_kind_created``)."""
        wanted = list(windows)
        window = EventRow.payload["window"].as_string()
        query = select(window).where(
            EventRow.kind == DRIFT_EVENT, EventRow.endpoint == endpoint, window.in_(wanted)
        )
        return {str(found) for found in self.session.scalars(query)}

    def lock_endpoint(self, endpoint_id: int) -> bool:
        """Lock the endpoint's row until the transaction ends (whether it still exists): the
        processes that record its drift events take turns. PostgreSQL locks the row (FOR
        UPDATE); on SQLite a no-op write takes the database's write lock first."""
        if self.dialect == "sqlite":
            self.session.execute(
                update(EndpointRow)
                .where(EndpointRow.id == endpoint_id)
                .values(id=EndpointRow.id)
                .execution_options(synchronize_session=False)
            )
        query = select(EndpointRow.id).where(EndpointRow.id == endpoint_id).with_for_update()
        return self.session.scalar(query) is not None
