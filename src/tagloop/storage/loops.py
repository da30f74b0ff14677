"""Loops (a classifier's champion and loop settings) and their iterations."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tagloop.domain.records import Origin
from tagloop.errors import NotFound
from tagloop.storage.repositories import rowcount
from tagloop.storage.tables import DocumentRow, IterationRow, LoopDatasetRow, LoopRow

IN_PROGRESS = ("TRAINING", "EVALUATING", "STOP_REQUESTED")
"""Iteration statuses of an iteration that has not ended (Comprehend's)."""
ENDED = ("COMPLETED", "FAILED", "STOPPED")


class LoopRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, classifier_id: int, lock: bool = False) -> LoopRow | None:
        """The classifier's loop; with ``lock`` the row is locked until the transaction ends
        (PostgreSQL; SQLite serializes writers anyway)."""
        query = select(LoopRow).where(LoopRow.classifier_id == classifier_id)
        if lock:
            query = query.with_for_update()
        return self.session.scalar(query)

    def by_name(self, name: str) -> LoopRow | None:
        return self.session.scalar(select(LoopRow).where(LoopRow.name == name))

    def add(
        self, classifier_id: int, active_version_id: int | None, settings: dict[str, Any], **fields: Any
    ) -> LoopRow:
        """A new loop, or the one another transaction made meanwhile (a savepoint catches the
        unique classifier_id)."""
        try:
            with self.session.begin_nested():
                row = LoopRow(
                    classifier_id=classifier_id,
                    active_version_id=active_version_id,
                    settings=settings,
                    status="ACTIVE",
                    tags=[],
                    verified_mark=0,
                    **fields,
                )
                self.session.add(row)
                self.session.flush()
                return row
        except IntegrityError:
            found = self.find(classifier_id)
            if found is None:
                raise
            return found

    def list(self) -> Sequence[LoopRow]:
        return self.session.scalars(select(LoopRow).order_by(LoopRow.id)).all()

    def set_champion(self, loop_id: int, version_id: int | None) -> None:
        self.session.execute(
            update(LoopRow).where(LoopRow.id == loop_id).values(active_version_id=version_id)
        )

    def advance_schedule(self, loop_id: int, due: datetime, next_run_at: datetime) -> bool:
        """Move a loop's schedule from ``due`` to ``next_run_at`` if no other process did: the
        one that wins starts the iteration."""
        result = self.session.execute(
            update(LoopRow)
            .where(LoopRow.id == loop_id, LoopRow.next_run_at == due)
            .values(next_run_at=next_run_at)
        )
        return rowcount(result) == 1

    def verified_count(self, classifier_id: int) -> int:
        """How many verified documents the classifier has (the ``after_verified`` trigger)."""
        query = select(func.count()).where(
            DocumentRow.classifier_id == classifier_id,
            DocumentRow.dataset_id.is_(None),
            DocumentRow.origin.in_((Origin.REVIEW.value, Origin.FEEDBACK.value)),
        )
        return int(self.session.scalar(query) or 0)

    def datasets(self, loop_id: int, kind: str) -> builtins.list[LoopDatasetRow]:
        """The loop's COMPLETED datasets of one kind (``TRAIN`` or ``TEST``), oldest first."""
        query = (
            select(LoopDatasetRow)
            .where(
                LoopDatasetRow.loop_id == loop_id,
                LoopDatasetRow.kind == kind,
                LoopDatasetRow.status == "COMPLETED",
                LoopDatasetRow.dataset_id.is_not(None),
            )
            .order_by(LoopDatasetRow.id)
        )
        return list(self.session.scalars(query))


def iteration_name(at: datetime) -> str:
    """Comprehend's FlywheelIterationId shape: ``20220907T214613Z``."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class IterationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, loop: LoopRow, trigger: str, **fields: Any) -> IterationRow:
        """A new iteration of ``loop``: the next number, a name from the time (a second later
        on a collision), a uuid4 id."""
        number = (
            self.session.scalar(select(func.max(IterationRow.number)).where(IterationRow.loop_id == loop.id))
            or 0
        ) + 1
        at = datetime.now(UTC).replace(microsecond=0)
        taken = set(
            self.session.scalars(
                select(IterationRow.name).where(
                    IterationRow.loop_id == loop.id, IterationRow.name >= iteration_name(at)
                )
            )
        )
        while iteration_name(at) in taken:
            at += timedelta(seconds=1)
        row = IterationRow(
            id=str(uuid.uuid4()),
            loop_id=loop.id,
            classifier_id=loop.classifier_id,
            number=number,
            name=iteration_name(at),
            trigger=trigger,
            rule={},
            documents={},
            **fields,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, iteration_id: str) -> IterationRow:
        row = self.session.get(IterationRow, iteration_id)
        if row is None:
            raise NotFound(f"no iteration {iteration_id}")
        return row

    def find(self, loop_id: int, name_or_id: str) -> IterationRow | None:
        """An iteration of a loop by its name (``20220907T214613Z``), its id, or its number."""
        query = select(IterationRow).where(IterationRow.loop_id == loop_id)
        if name_or_id.isdigit() and len(name_or_id) < 10:
            return self.session.scalar(query.where(IterationRow.number == int(name_or_id)))
        return self.session.scalar(
            query.where((IterationRow.name == name_or_id) | (IterationRow.id == name_or_id))
        )

    def list(
        self,
        loop_id: int,
        limit: int = 100,
        after: int | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> builtins.list[IterationRow]:
        """Iterations newest first, created strictly within the bounds given; ``after`` (the
        number of the last of a page) pages on."""
        query = select(IterationRow).where(IterationRow.loop_id == loop_id)
        if after is not None:
            query = query.where(IterationRow.number < after)
        if created_after is not None:
            query = query.where(IterationRow.created_at > created_after)
        if created_before is not None:
            query = query.where(IterationRow.created_at < created_before)
        return list(self.session.scalars(query.order_by(IterationRow.number.desc()).limit(limit)))

    def running(self, loop_id: int) -> IterationRow | None:
        return self.session.scalar(
            select(IterationRow)
            .where(IterationRow.loop_id == loop_id, IterationRow.status.in_(IN_PROGRESS))
            .order_by(IterationRow.number.desc())
            .limit(1)
        )

    def latest(self, loop_id: int) -> IterationRow | None:
        return self.session.scalar(
            select(IterationRow)
            .where(IterationRow.loop_id == loop_id)
            .order_by(IterationRow.number.desc())
            .limit(1)
        )

    def transition(self, iteration_id: str, status: str, when: Sequence[str], **fields: Any) -> bool:
        """Set an iteration's status (and ``fields``) only if it is one of ``when`` (a
        conditional UPDATE: a concurrent stop is never overwritten)."""
        result = self.session.execute(
            update(IterationRow)
            .where(IterationRow.id == iteration_id, IterationRow.status.in_(list(when)))
            .values(status=status, **fields)
        )
        return rowcount(result) == 1

    def set(self, iteration_id: str, **fields: Any) -> None:
        self.session.execute(update(IterationRow).where(IterationRow.id == iteration_id).values(**fields))
