"""Import profiles seen from storage: one row per (classifier, name), its spec as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tagloop.errors import NotFound
from tagloop.storage.tables import ImportProfileRow, utcnow


class ProfileRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, classifier_id: int, name: str) -> ImportProfileRow | None:
        return self.session.scalar(
            select(ImportProfileRow).where(
                ImportProfileRow.classifier_id == classifier_id, ImportProfileRow.name == name
            )
        )

    def get(self, classifier_id: int, classifier: str, name: str) -> ImportProfileRow:
        row = self.find(classifier_id, name)
        if row is None:
            raise NotFound(f"classifier {classifier!r} has no import profile {name!r}")
        return row

    def list(self, classifier_id: int) -> Sequence[ImportProfileRow]:
        return self.session.scalars(
            select(ImportProfileRow)
            .where(ImportProfileRow.classifier_id == classifier_id)
            .order_by(ImportProfileRow.name)
        ).all()

    def put(self, classifier_id: int, name: str, spec: dict[str, Any]) -> tuple[ImportProfileRow, bool]:
        """Create the profile, or replace its spec; returns the row and whether it is new."""
        row = self.find(classifier_id, name)
        if row is None:
            row = ImportProfileRow(classifier_id=classifier_id, name=name, spec=spec)
            self.session.add(row)
            self.session.flush()
            return row, True
        row.spec = spec
        row.updated_at = utcnow()
        self.session.flush()
        return row, False

    def delete(self, row: ImportProfileRow) -> None:
        self.session.delete(row)
        self.session.flush()
