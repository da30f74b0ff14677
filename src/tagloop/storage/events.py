"""Events: what happened that a person may want to hear about, recorded as it happens.

Kinds in use: ``iteration.completed`` (an iteration decided: promoted or kept, with its
figures), ``iteration.failed``, ``drift.detected`` (an endpoint's predictions drifted past the
threshold) and ``pool.rate`` (an endpoint's share of predictions fed to the pool changed; its
``through`` says from which prediction on; where sampling has reached is kept on the endpoint's
row, ``storage/pool.py``). The pipeline's notifications deliver them
(webhooks, e-mail); until then they are listed by the CLI and ``/v1/events``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tagloop.storage.tables import EventRow, utcnow


class EventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        kind: str,
        payload: dict[str, Any],
        classifier_id: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Record an event inside the caller's transaction (it exists if and only if what it
        tells of was committed)."""
        self.session.execute(
            insert(EventRow).values(
                kind=kind,
                classifier_id=classifier_id,
                endpoint=endpoint,
                payload=payload,
                created_at=utcnow(),
            )
        )

    def list(
        self,
        kind: str | None = None,
        classifier_id: int | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> Sequence[EventRow]:
        """Events oldest first, after ``after_id`` (for a reader that follows them)."""
        query = select(EventRow).order_by(EventRow.id).limit(limit)
        if kind is not None:
            query = query.where(EventRow.kind == kind)
        if classifier_id is not None:
            query = query.where(EventRow.classifier_id == classifier_id)
        if after_id is not None:
            query = query.where(EventRow.id > after_id)
        return self.session.scalars(query).all()
