"""The unlabelled pool's rows on a given Session: documents of split ``pool`` outside any
version's dataset (``dataset_id`` NULL), each with its ``text_hash``; ``pool_task_id`` is NULL
while the document waits in the pool and names the review task it went into once picked.

Concurrency. Whoever adds to a classifier's pool or picks from it holds the classifier's pool
lock for the rest of its transaction (:meth:`PoolRepository.lock`): on PostgreSQL a
transaction-scoped advisory lock, on SQLite the write lock every write transaction takes up
front (``storage.review.write_transaction``). So the "already pooled or verified?" check and
the insert that follows are never interleaved with another process's, and a document is
picked once.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from tagloop.domain.records import Origin, Split
from tagloop.storage.repositories import rowcount
from tagloop.storage.tables import (
    DocumentRow,
    EndpointRow,
    ModelVersionRow,
    PredictionRow,
    ReviewTaskRow,
)

POOL = Split.POOL.value
VERIFIED_ORIGINS = (Origin.REVIEW.value, Origin.FEEDBACK.value)
LOCK_NAMESPACE = 0x7A61  # the first key of the pool's advisory locks (the second: the classifier id)
IN_CHUNK = 1_000  # values per IN (...) list
RATE = "pool.rate"
"""Event kind: an endpoint's pool rate set (``through`` = from when its predictions count)."""

Doc = DocumentRow


def _chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class PoolRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def lock(self, classifier_id: int) -> None:
        """Hold the classifier's pool lock until the transaction ends (see the module's text)."""
        if self.postgres:
            self.session.execute(select(func.pg_advisory_xact_lock(LOCK_NAMESPACE, classifier_id)))

    # --- adding --------------------------------------------------------------------------

    def known(self, classifier_id: int, hashes: Sequence[str]) -> dict[str, str]:
        """Of ``hashes``, those the classifier has pooled (``pool``) or verified (``verified``)."""
        found: dict[str, str] = {}
        for chunk in _chunks(builtins.list(dict.fromkeys(hashes))):
            query = select(Doc.text_hash, Doc.split).where(
                Doc.classifier_id == classifier_id,
                Doc.dataset_id.is_(None),
                Doc.text_hash.in_(chunk),
                or_(Doc.split == POOL, Doc.origin.in_(VERIFIED_ORIGINS)),
            )
            for text_hash, split in self.session.execute(query):
                if text_hash is not None and found.get(text_hash) != "verified":
                    found[text_hash] = "pool" if split == POOL else "verified"
        return found

    def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(Doc), builtins.list(rows))

    # --- reading -------------------------------------------------------------------------

    def counts(self, classifier_id: int) -> dict[str, Any]:
        """Pool documents waiting and picked, by origin."""
        query = (
            select(Doc.origin, Doc.pool_task_id.is_(None), func.count())
            .where(Doc.classifier_id == classifier_id, Doc.split == POOL, Doc.dataset_id.is_(None))
            .group_by(Doc.origin, Doc.pool_task_id.is_(None))
        )
        waiting = picked = 0
        by_origin: dict[str, int] = {}
        for origin, is_waiting, count in self.session.execute(query):
            by_origin[origin] = by_origin.get(origin, 0) + int(count)
            if is_waiting:
                waiting += int(count)
            else:
                picked += int(count)
        return {"waiting": waiting, "picked": picked, "documents": waiting + picked, "by_origin": by_origin}

    def page(
        self, classifier_id: int, picked: bool | None, limit: int, after_id: int | None
    ) -> builtins.list[tuple[DocumentRow, str | None]]:
        """Pool documents oldest first (after ``after_id``), with their task's status if picked."""
        query = (
            select(Doc, ReviewTaskRow.status)
            .outerjoin(ReviewTaskRow, ReviewTaskRow.id == Doc.pool_task_id)
            .where(Doc.classifier_id == classifier_id, Doc.split == POOL, Doc.dataset_id.is_(None))
            .order_by(Doc.id)
            .limit(limit)
        )
        if picked is True:
            query = query.where(Doc.pool_task_id.is_not(None))
        elif picked is False:
            query = query.where(Doc.pool_task_id.is_(None))
        if after_id is not None:
            query = query.where(Doc.id > after_id)
        return [(row, status) for row, status in self.session.execute(query)]

    def waiting_ids(self, classifier_id: int) -> builtins.list[int]:
        """The ids of the documents waiting in the pool (not picked), oldest first."""
        query = (
            select(Doc.id)
            .where(
                Doc.classifier_id == classifier_id,
                Doc.split == POOL,
                Doc.dataset_id.is_(None),
                Doc.pool_task_id.is_(None),
            )
            .order_by(Doc.id)
        )
        return builtins.list(self.session.scalars(query))

    def texts(self, ids: Sequence[int]) -> dict[int, tuple[str, builtins.list[str]]]:
        """Text and label hints of these documents, by id."""
        found: dict[int, tuple[str, builtins.list[str]]] = {}
        for chunk in _chunks(ids):
            for doc_id, text, labels in self.session.execute(
                select(Doc.id, Doc.text, Doc.labels).where(Doc.id.in_(chunk))
            ):
                found[int(doc_id)] = (text, builtins.list(labels or []))
        return found

    # --- picking and returning -------------------------------------------------------------

    def still_waiting(self, classifier_id: int, ids: Sequence[int]) -> set[int]:
        """Of ``ids``, the documents still waiting in the classifier's pool (call under :meth:`lock`)."""
        waiting: set[int] = set()
        for chunk in _chunks(ids):
            query = select(Doc.id).where(
                Doc.id.in_(chunk),
                Doc.classifier_id == classifier_id,
                Doc.split == POOL,
                Doc.pool_task_id.is_(None),
            )
            waiting.update(int(doc_id) for doc_id in self.session.scalars(query))
        return waiting

    def mark_picked(self, picks: Sequence[tuple[int, str]]) -> None:
        """Mark each (document id, task id): the document went into that review task."""
        for doc_id, task_id in picks:
            self.session.execute(
                update(Doc)
                .where(Doc.id == doc_id)
                .values(pool_task_id=task_id)
                .execution_options(synchronize_session=False)
            )

    def return_to_pool(self, classifier_id: int, task_ids: Sequence[str]) -> int:
        """Put the pool documents of these tasks (ended without labels) back in the pool."""
        returned = 0
        for chunk in _chunks(builtins.list(task_ids)):
            result = self.session.execute(
                update(Doc)
                .where(Doc.classifier_id == classifier_id, Doc.split == POOL, Doc.pool_task_id.in_(chunk))
                .values(pool_task_id=None)
                .execution_options(synchronize_session=False)
            )
            returned += rowcount(result)
        return returned

    def clear(self, classifier_id: int) -> int:
        """Delete the documents waiting in the pool (picked ones stay with their tasks)."""
        result = self.session.execute(
            delete(Doc)
            .where(
                Doc.classifier_id == classifier_id,
                Doc.split == POOL,
                Doc.dataset_id.is_(None),
                Doc.pool_task_id.is_(None),
            )
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)

    # --- sampling logged predictions ---------------------------------------------------------

    def feeding_endpoints(self) -> builtins.list[EndpointRow]:
        """Endpoints whose logged predictions feed their classifier's pool."""
        return builtins.list(self.session.scalars(select(EndpointRow).where(EndpointRow.pool_rate > 0)))

    def watermark(self, endpoint: EndpointRow) -> tuple[datetime, str] | None:
        """(created_at, id) of the last prediction of ``endpoint`` examined for the pool (or when
        its rate was set, with id ``""``); None when its rate was never set."""
        if endpoint.pool_through_at is None:
            return None
        return endpoint.pool_through_at, endpoint.pool_through_id or ""

    def move_watermark(self, endpoint: EndpointRow, through: datetime, through_id: str) -> None:
        endpoint.pool_through_at = through
        endpoint.pool_through_id = through_id

    def predictions_after(
        self,
        endpoint: str,
        classifier_id: int,
        after: tuple[datetime, str],
        until: datetime,
        limit: int,
    ) -> builtins.list[tuple[str, str | None, datetime]]:
        """(id, text, created_at) of ``endpoint``'s logged predictions after ``after`` and
        at most ``until``, in (created_at, id) order, of a version of the classifier."""
        when, last_id = after
        query = (
            select(PredictionRow.id, PredictionRow.text, PredictionRow.created_at)
            .join(ModelVersionRow, ModelVersionRow.id == PredictionRow.version_id)
            .where(
                PredictionRow.endpoint == endpoint,
                ModelVersionRow.classifier_id == classifier_id,
                PredictionRow.created_at <= until,
                or_(
                    PredictionRow.created_at > when,
                    and_(PredictionRow.created_at == when, PredictionRow.id > last_id),
                ),
            )
            .order_by(PredictionRow.created_at, PredictionRow.id)
            .limit(limit)
        )
        return [(pid, text, created_at) for pid, text, created_at in self.session.execute(query)]
