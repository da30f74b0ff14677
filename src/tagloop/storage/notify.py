"""Notification channels and their delivery log (tables ``channels``, ``deliveries``).

A delivery is ``pending`` (due at ``next_attempt_at``), ``sending`` (claimed by one process
until ``next_attempt_at``, its lease: a process that dies while sending leaves it to be
claimed again once the lease ends), ``delivered`` or ``failed`` (attempts used up). Claims are
conditional UPDATEs, so two processes never send the same delivery at once. Delivered and
failed ones are deleted some days after their last attempt (TAGLOOP_NOTIFY_KEEP_DAYS).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tagloop.errors import NotFound
from tagloop.storage.repositories import rowcount
from tagloop.storage.tables import ChannelRow, DeliveryRow, EventRow, utcnow

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
STATUSES = (PENDING, SENDING, DELIVERED, FAILED)


class ChannelRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **values: Any) -> ChannelRow:
        newest = self.session.scalar(select(func.max(EventRow.id)))
        row = ChannelRow(after_event_id=int(newest or 0), **values)  # hears what happens from now on
        self.session.add(row)
        self.session.flush()
        return row

    def find(self, name: str) -> ChannelRow | None:
        return self.session.scalar(select(ChannelRow).where(ChannelRow.name == name))

    def get(self, name: str) -> ChannelRow:
        row = self.find(name)
        if row is None:
            raise NotFound(f"no notification channel {name!r}")
        return row

    def list(self, enabled_only: bool = False) -> Sequence[ChannelRow]:
        query = select(ChannelRow).order_by(ChannelRow.name)
        if enabled_only:
            query = query.where(ChannelRow.enabled.is_(True))
        return self.session.scalars(query).all()

    def remove(self, row: ChannelRow) -> None:
        self.session.execute(delete(DeliveryRow).where(DeliveryRow.channel_id == row.id))
        self.session.delete(row)

    def lock(self, channel_id: int) -> ChannelRow | None:
        """The channel, locked for the rest of the transaction (PostgreSQL: a row lock; SQLite
        takes its write lock with the first write)."""
        return self.session.scalar(
            select(ChannelRow)
            .where(ChannelRow.id == channel_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def events_after(self, after_id: int, limit: int) -> Sequence[EventRow]:
        return self.session.scalars(
            select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id).limit(limit)
        ).all()


class DeliveryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_for_events(self, channel_id: int, rows: list[dict[str, Any]]) -> int:
        """Insert one pending delivery per event, skipping events the channel has one for
        (the unique key decides, so two processes adding the same event add it once)."""
        if not rows:
            return 0
        values = [{"channel_id": channel_id, "status": PENDING, "attempts": 0, **row} for row in rows]
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(DeliveryRow)
            .values(values)
            .on_conflict_do_nothing(index_elements=["channel_id", "event_id"])
            .returning(DeliveryRow.id)  # the inserted ones (a multi-row rowcount is not portable)
        )
        return len(self.session.execute(statement).all())

    def add(self, **values: Any) -> DeliveryRow:
        row = DeliveryRow(**values)
        self.session.add(row)
        self.session.flush()
        return row

    def due_ids(self, now: datetime, limit: int) -> list[int]:
        """Deliveries to send now: pending and due, or sending with an ended lease, of enabled
        channels (a paused channel's deliveries wait until it is enabled again)."""
        query = (
            select(DeliveryRow.id)
            .join(ChannelRow, ChannelRow.id == DeliveryRow.channel_id)
            .where(
                DeliveryRow.status.in_((PENDING, SENDING)),
                DeliveryRow.next_attempt_at <= now,
                ChannelRow.enabled.is_(True),
            )
            .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
            .limit(limit)
        )
        return list(self.session.scalars(query).all())

    def claim(self, delivery_id: int, now: datetime, lease_seconds: float) -> DeliveryRow | None:
        """Take a due delivery for one attempt (its lease ends ``lease_seconds`` from now);
        None when another process took it first or it is no longer due."""
        claimed = self.session.execute(
            update(DeliveryRow)
            .where(
                DeliveryRow.id == delivery_id,
                DeliveryRow.status.in_((PENDING, SENDING)),
                DeliveryRow.next_attempt_at <= now,
            )
            .values(
                status=SENDING,
                attempts=DeliveryRow.attempts + 1,
                next_attempt_at=now + timedelta(seconds=lease_seconds),
                last_attempt_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if rowcount(claimed) != 1:
            return None
        return self.session.get(DeliveryRow, delivery_id, populate_existing=True)

    def settle(self, delivery_id: int, attempts: int, **values: Any) -> bool:
        """Record how an attempt ended, if the delivery is still the claim of that attempt."""
        result = self.session.execute(
            update(DeliveryRow)
            .where(
                DeliveryRow.id == delivery_id,
                DeliveryRow.status == SENDING,
                DeliveryRow.attempts == attempts,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    def list(
        self,
        channel_id: int | None = None,
        status: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> Sequence[DeliveryRow]:
        """Newest first."""
        query = select(DeliveryRow).order_by(DeliveryRow.id.desc()).limit(limit)
        if channel_id is not None:
            query = query.where(DeliveryRow.channel_id == channel_id)
        if status is not None:
            query = query.where(DeliveryRow.status == status)
        if before_id is not None:
            query = query.where(DeliveryRow.id < before_id)
        return self.session.scalars(query).all()

    def counts(self) -> dict[str, int]:
        """Deliveries by status (every channel)."""
        rows = self.session.execute(select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status))
        return {str(status): int(count) for status, count in rows}

    def delete_finished_before(self, moment: datetime, limit: int) -> int:
        """Delete at most ``limit`` delivered or failed deliveries whose last attempt ended
        before ``moment`` (pending and sending ones never); returns how many."""
        finished = func.coalesce(
            DeliveryRow.delivered_at, DeliveryRow.last_attempt_at, DeliveryRow.created_at
        )
        done = (DeliveryRow.status.in_((DELIVERED, FAILED)), finished < moment)
        oldest = select(DeliveryRow.id).where(*done).order_by(DeliveryRow.id).limit(limit)
        result = self.session.execute(
            # the conditions again on the row deleted: one re-queued meanwhile (PostgreSQL
            # rechecks them on its newest version) stays
            delete(DeliveryRow)
            .where(DeliveryRow.id.in_(oldest.scalar_subquery()), *done)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)

    def retry_failed(self, channel_id: int, now: datetime) -> int:
        """Failed deliveries of a channel back to pending, due now, attempts starting over."""
        result = self.session.execute(
            update(DeliveryRow)
            .where(and_(DeliveryRow.channel_id == channel_id, or_(DeliveryRow.status == FAILED)))
            .values(status=PENDING, attempts=0, next_attempt_at=now, error=None)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)


__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "SENDING",
    "STATUSES",
    "ChannelRepository",
    "DeliveryRepository",
    "utcnow",
]
