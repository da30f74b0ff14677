"""Reading the prediction log, and deleting what is older than the retention allows.

Rows are written by :class:`~tagloop.services.prediction_log.PredictionLog` into the
``predictions`` table: id, endpoint, model version, the text (unless
``TAGLOOP_LOG_PREDICTION_TEXT`` is off), the result as ClassifyDocument answers it, its best
label and score, and when. They are listed newest first, a page at a time, keyed on the last
row listed (so a page costs the same however deep it is, and predictions logged meanwhile
never shift a page). With ``TAGLOOP_PREDICTION_RETENTION_DAYS`` set, a server deletes the
older rows when it starts and every hour after, a few thousand per transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, or_, select

from tagloop.domain import comprehend
from tagloop.domain.records import Mode
from tagloop.domain.routing import Reason
from tagloop.errors import InvalidRequest, NotFound
from tagloop.storage.database import Database
from tagloop.storage.repositories import rowcount
from tagloop.storage.tables import ClassifierRow, ModelVersionRow, PredictionRow, ReviewTaskRow, utcnow

log = logging.getLogger(__name__)

PURGE_BATCH = 5_000
"""Rows deleted per transaction: short transactions, so the log's writer never waits long."""
RETENTION_CHECK_SECONDS = 3_600.0
"""How often a server deletes the predictions that have become too old."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
FEEDBACK = Reason.FEEDBACK.value
SINCE_HELP = (
    "a date (2026-11-30), a date and time (2026-11-30T14:00:00Z) or a duration back from now (30m, 24h, 7d)"
)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """The moment ``value`` names: an ISO date (midnight UTC), an ISO date and time (UTC unless
    it gives an offset), or a duration back from ``now`` (``90s``, ``30m``, ``24h``, ``7d``, ``2w``)."""
    now = now or utcnow()
    try:
        if match := _DURATION.match(value):
            return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
        if len(value.strip()) == 10:
            day = date.fromisoformat(value.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a date, or a duration reaching before year 1
        raise InvalidRequest(f"since: {value[:60]!r} is not {SINCE_HELP}") from None


def _token(row: PredictionRow) -> str:
    """An opaque token for the page after ``row``: its place in the newest-first order."""
    return base64.urlsafe_b64encode(json.dumps([row.created_at.isoformat(), row.id]).encode()).decode()


def _after(token: str) -> tuple[datetime, str]:
    try:
        created_at, prediction_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        moment, prediction_id = datetime.fromisoformat(created_at), str(prediction_id)
    except (binascii.Error, UnicodeError, ValueError, TypeError) as exc:
        raise InvalidRequest("the cursor is not one this service gave") from exc
    if moment.tzinfo is None or "\x00" in prediction_id:
        raise InvalidRequest("the cursor is not one this service gave")
    return moment, prediction_id


def prediction_summary(row: PredictionRow, classifier: str | None, version: str | None) -> dict[str, Any]:
    """A logged prediction in the native API's shape: its ``classes`` (multi-class) or ``labels``
    (multi-label) as ``{name, score}``, best first, as classify answered them."""
    result = row.result if isinstance(row.result, dict) else json.loads(row.result)
    mode, entries = comprehend.scored(result)
    key = "classes" if mode is Mode.MULTI_CLASS else "labels"
    return {
        "id": row.id,
        "endpoint": row.endpoint,
        "classifier": classifier,
        "version": version,
        "created_at": row.created_at.isoformat(),
        "label": row.top_label,
        "score": row.top_score,
        key: [{"name": name, "score": score} for name, score in entries],
        "text": row.text,
    }


class PredictionHistory:
    def __init__(self, database: Database, retention_days: int = 0) -> None:
        self.database = database
        self.retention_days = retention_days
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def page(
        self,
        endpoint: str | None = None,
        since: str | None = None,
        label: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        routed: bool | None = None,
        feedback: bool | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of logged predictions, newest first: of one endpoint, logged at or after
        ``since`` (see :func:`parse_since`), whose best label is ``label``, whose best score is
        within ``min_score``..``max_score``, that were (or were not) ``routed`` to review, that
        did (or did not) get end-user ``feedback``; and the cursor of the next page (None on
        the last one)."""
        if limit < 1:
            raise InvalidRequest("limit: must be 1 or more")
        for name, bound in (("min_score", min_score), ("max_score", max_score)):
            if bound is not None and not 0.0 <= bound <= 1.0:  # also refuses NaN
                raise InvalidRequest(f"{name}: a score from 0 to 1, not {bound!r}")
        query = (
            select(PredictionRow, ClassifierRow.name, ModelVersionRow.name)
            .outerjoin(ModelVersionRow, ModelVersionRow.id == PredictionRow.version_id)
            .outerjoin(ClassifierRow, ClassifierRow.id == ModelVersionRow.classifier_id)
            .order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
            .limit(limit + 1)
        )
        if endpoint is not None:
            query = query.where(PredictionRow.endpoint == endpoint)
        if since is not None:
            query = query.where(PredictionRow.created_at >= parse_since(since))
        if label is not None:
            if "\x00" in label:  # PostgreSQL refuses NUL in text: no label has one
                raise InvalidRequest("label: must not contain NUL characters")
            query = query.where(PredictionRow.top_label == label)
        if min_score is not None:
            query = query.where(PredictionRow.top_score >= min_score)
        if max_score is not None:
            query = query.where(PredictionRow.top_score <= max_score)
        for wanted, is_feedback in ((routed, False), (feedback, True)):
            if wanted is not None:
                tasks = exists().where(
                    ReviewTaskRow.prediction_id == PredictionRow.id,
                    (ReviewTaskRow.reason == FEEDBACK) if is_feedback else (ReviewTaskRow.reason != FEEDBACK),
                )
                query = query.where(tasks if wanted else ~tasks)
        if cursor:
            created_at, prediction_id = _after(cursor)
            # the first term alone bounds the index scan; the second leaves out what was listed
            query = query.where(
                PredictionRow.created_at <= created_at,
                or_(PredictionRow.created_at < created_at, PredictionRow.id < prediction_id),
            )
        with self.database.reading() as session:
            rows = session.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [prediction_summary(row, classifier, version) for row, classifier, version in rows]
        return items, _token(rows[-1][0]) if more else None

    def get(self, prediction_id: str) -> dict[str, Any]:
        """One logged prediction (NotFound if the log does not hold it, e.g. after retention)."""
        query = (
            select(PredictionRow, ClassifierRow.name, ModelVersionRow.name)
            .outerjoin(ModelVersionRow, ModelVersionRow.id == PredictionRow.version_id)
            .outerjoin(ClassifierRow, ClassifierRow.id == ModelVersionRow.classifier_id)
            .where(PredictionRow.id == prediction_id[:36])
        )
        with self.database.reading() as session:
            found = session.execute(query).first()
        if found is None:
            raise NotFound(
                f"no logged prediction {prediction_id[:40]!r} (never logged, or deleted by retention)"
            )
        return prediction_summary(*found)

    def review_reasons(self, prediction_ids: list[str]) -> dict[str, list[str]]:
        """Why each of the predictions got review tasks (``feedback`` for end-user feedback,
        else the routing reason), by prediction id; predictions without a task are left out."""
        if not prediction_ids:
            return {}
        query = select(ReviewTaskRow.prediction_id, ReviewTaskRow.reason).where(
            ReviewTaskRow.prediction_id.in_(prediction_ids)
        )
        found: dict[str, list[str]] = {}
        with self.database.reading() as session:
            for prediction_id, reason in session.execute(query):
                if prediction_id is not None:
                    found.setdefault(prediction_id, []).append(reason)
        return found

    # ---- retention -------------------------------------------------------------------------
    def purge(self, now: datetime | None = None, stopping: threading.Event | None = None) -> int:
        """Delete the predictions older than the retention (none when it is 0), ``PURGE_BATCH``
        rows per transaction, until none is left or ``stopping`` is set; returns how many."""
        if self.retention_days <= 0:
            return 0
        cutoff = (now or utcnow()) - timedelta(days=self.retention_days)
        oldest = (
            select(PredictionRow.id)
            .where(PredictionRow.created_at < cutoff)
            .order_by(PredictionRow.created_at)
            .limit(PURGE_BATCH)
        )
        batch = delete(PredictionRow).where(PredictionRow.id.in_(oldest.scalar_subquery()))
        deleted = 0
        while stopping is None or not stopping.is_set():
            with self.database.transaction() as session:
                count = rowcount(session.execute(batch.execution_options(synchronize_session=False)))
            deleted += count
            if count < PURGE_BATCH:
                break
        if deleted:
            log.info("deleted %d logged predictions older than %d days", deleted, self.retention_days)
        return deleted

    def start_retention(self) -> None:
        """Delete too old predictions now and every ``RETENTION_CHECK_SECONDS``, from a thread
        (a server does this; a no-op when the retention is 0)."""
        if self.retention_days <= 0:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._retain, name="tagloop-retention", daemon=True)
            self._thread.start()

    def _retain(self) -> None:
        while True:
            try:
                self.purge(stopping=self._stopping)
            except Exception:  # the database may be briefly away: try again at the next check
                log.exception("deleting old logged predictions failed")
            if self._stopping.wait(RETENTION_CHECK_SECONDS):
                return

    def stop_retention(self) -> None:
        self._stopping.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
