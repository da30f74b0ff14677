"""Flywheels seen from storage: loops known by a flywheel name (``LoopRow.name``) and the
datasets added to them (``LoopDatasetRow``: Comprehend's CreateDataset on a flywheel).

A loop dataset points at a ``DatasetRow`` whose documents were imported with the split of its
kind (``train`` for TRAIN, ``test`` for TEST); an iteration reads the COMPLETED ones of its
loop (:meth:`LoopDatasetRepository.dataset_ids`)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tagloop.errors import NotFound
from tagloop.storage.tables import DatasetRow, IterationRow, LoopDatasetRow, LoopRow

TRAIN, TEST = "TRAIN", "TEST"
CREATING, COMPLETED, FAILED = "CREATING", "COMPLETED", "FAILED"


class FlywheelRepository:
    """Loops that have a flywheel name."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, name: str) -> LoopRow | None:
        return self.session.scalar(select(LoopRow).where(LoopRow.name == name))

    def get(self, name: str) -> LoopRow:
        row = self.find(name)
        if row is None:
            raise NotFound(f"no flywheel named {name!r}")
        return row

    def for_classifier(self, classifier_id: int) -> LoopRow | None:
        return self.session.scalar(select(LoopRow).where(LoopRow.classifier_id == classifier_id))

    def list(
        self,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Sequence[LoopRow]:
        """Flywheels oldest first."""
        query = select(LoopRow).where(LoopRow.name.is_not(None)).order_by(LoopRow.created_at, LoopRow.id)
        if status is not None:
            query = query.where(LoopRow.status == status)
        if created_after is not None:
            query = query.where(LoopRow.created_at > created_after)
        if created_before is not None:
            query = query.where(LoopRow.created_at < created_before)
        return self.session.scalars(query).all()

    def latest_iteration(self, loop_id: int) -> IterationRow | None:
        return self.session.scalar(
            select(IterationRow)
            .where(IterationRow.loop_id == loop_id)
            .order_by(IterationRow.number.desc())
            .limit(1)
        )

    def running_iteration(self, loop_id: int) -> IterationRow | None:
        """An iteration of the loop that has not ended (TRAINING, EVALUATING, STOP_REQUESTED)."""
        return self.session.scalar(
            select(IterationRow)
            .where(
                IterationRow.loop_id == loop_id,
                IterationRow.status.in_(("TRAINING", "EVALUATING", "STOP_REQUESTED")),
            )
            .limit(1)
        )


class LoopDatasetRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **fields: Any) -> LoopDatasetRow:
        row = LoopDatasetRow(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def find(self, loop_id: int, name: str) -> LoopDatasetRow | None:
        return self.session.scalar(
            select(LoopDatasetRow).where(LoopDatasetRow.loop_id == loop_id, LoopDatasetRow.name == name)
        )

    def get(self, loop_id: int, name: str) -> LoopDatasetRow:
        row = self.find(loop_id, name)
        if row is None:
            raise NotFound(f"no dataset named {name!r} in this flywheel")
        return row

    def list(
        self,
        loop_ids: Sequence[int] | None = None,
        kind: str | None = None,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Sequence[LoopDatasetRow]:
        """Datasets oldest first, of the given loops (None: of every loop)."""
        query = select(LoopDatasetRow).order_by(LoopDatasetRow.created_at, LoopDatasetRow.id)
        if loop_ids is not None:
            query = query.where(LoopDatasetRow.loop_id.in_(list(loop_ids)))
        if kind is not None:
            query = query.where(LoopDatasetRow.kind == kind)
        if status is not None:
            query = query.where(LoopDatasetRow.status == status)
        if created_after is not None:
            query = query.where(LoopDatasetRow.created_at > created_after)
        if created_before is not None:
            query = query.where(LoopDatasetRow.created_at < created_before)
        return self.session.scalars(query).all()

    def dataset_ids(self, loop_id: int, kind: str) -> builtins.list[int]:
        """The ``DatasetRow`` ids of the loop's COMPLETED datasets of ``kind`` (TRAIN or TEST),
        oldest first: what an iteration trains on or tests with."""
        return [
            dataset_id
            for dataset_id in self.session.scalars(
                select(LoopDatasetRow.dataset_id)
                .where(
                    LoopDatasetRow.loop_id == loop_id,
                    LoopDatasetRow.kind == kind,
                    LoopDatasetRow.status == COMPLETED,
                )
                .order_by(LoopDatasetRow.created_at, LoopDatasetRow.id)
            )
            if dataset_id is not None
        ]

    def delete_for_loop(self, loop_id: int) -> int:
        """Delete the loop's datasets with their documents; returns how many there were."""
        dataset_ids = [row.dataset_id for row in self.list([loop_id]) if row.dataset_id is not None]
        count = len(self.list([loop_id]))
        self.session.execute(delete(LoopDatasetRow).where(LoopDatasetRow.loop_id == loop_id))
        if dataset_ids:
            self.session.execute(delete(DatasetRow).where(DatasetRow.id.in_(dataset_ids)))
        return count
