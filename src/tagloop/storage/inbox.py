"""Inboxes and the files seen in them (tables ``inboxes`` and ``inbox_files``).

A file is one row per (inbox, name, fingerprint): the unique key is what makes a file
processed once however many processes scan the inbox. Its state moves by conditional
UPDATEs (:meth:`InboxRepository.transition`), so two processes never both claim it.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tagloop.domain.inbox import CLAIMED, SEEN
from tagloop.errors import NotFound
from tagloop.storage.repositories import rowcount
from tagloop.storage.tables import DocumentRow, ImportProfileRow, InboxFileRow, InboxRow


class InboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # ---- inboxes ----------------------------------------------------------------------
    def add(self, **fields: Any) -> InboxRow:
        row = InboxRow(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def find(self, name: str) -> InboxRow | None:
        return self.session.scalar(select(InboxRow).where(InboxRow.name == name))

    def get(self, name: str) -> InboxRow:
        row = self.find(name)
        if row is None:
            raise NotFound(f"no inbox named {name!r}")
        return row

    def find_url(self, url: str) -> InboxRow | None:
        return self.session.scalar(select(InboxRow).where(InboxRow.url == url))

    def list(self, enabled_only: bool = False) -> Sequence[InboxRow]:
        query = select(InboxRow).order_by(InboxRow.name)
        if enabled_only:
            query = query.where(InboxRow.enabled.is_(True))
        return self.session.scalars(query).all()

    def delete(self, row: InboxRow) -> None:
        self.session.delete(row)
        self.session.flush()

    def profile(self, classifier_id: int, name: str) -> ImportProfileRow | None:
        """The classifier's import profile ``name`` (profiles are made by services/profiles.py)."""
        return self.session.scalar(
            select(ImportProfileRow).where(
                ImportProfileRow.classifier_id == classifier_id, ImportProfileRow.name == name
            )
        )

    # ---- files ------------------------------------------------------------------------
    def file(self, file_id: int) -> InboxFileRow:
        row = self.session.get(InboxFileRow, file_id)
        if row is None:
            raise NotFound(f"no inbox file {file_id}")
        return row

    def find_file(self, inbox_id: int, name: str, fingerprint: str) -> InboxFileRow | None:
        return self.session.scalar(
            select(InboxFileRow).where(
                InboxFileRow.inbox_id == inbox_id,
                InboxFileRow.name == name,
                InboxFileRow.fingerprint == fingerprint,
            )
        )

    def seen_files(self, inbox_id: int) -> Sequence[InboxFileRow]:
        """The inbox's files still in state ``seen`` (not complete yet)."""
        return self.session.scalars(
            select(InboxFileRow).where(InboxFileRow.inbox_id == inbox_id, InboxFileRow.state == SEEN)
        ).all()

    def add_file(self, **fields: Any) -> InboxFileRow:
        row = InboxFileRow(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def transition(self, file_id: int, state: str, when: Sequence[str], **fields: Any) -> bool:
        """Set a file's state (and ``fields``) only if it is in one of ``when``; False if not."""
        result = self.session.execute(
            update(InboxFileRow)
            .where(InboxFileRow.id == file_id, InboxFileRow.state.in_(list(when)))
            .values(state=state, **fields)
        )
        return bool(rowcount(result) == 1)

    def claim(self, file_id: int, fingerprint: str, **fields: Any) -> bool:
        """``seen`` → ``claimed`` if the file is still seen with this fingerprint: the one
        process whose UPDATE matched enqueues its job in the same transaction."""
        result = self.session.execute(
            update(InboxFileRow)
            .where(
                InboxFileRow.id == file_id,
                InboxFileRow.state == SEEN,
                InboxFileRow.fingerprint == fingerprint,
            )
            .values(state=CLAIMED, **fields)
        )
        return bool(rowcount(result) == 1)

    def forget_seen(self, inbox_id: int, names: Sequence[str]) -> int:
        """Drop ``seen`` rows of files no longer in the inbox (deleted before they were complete)."""
        if not names:
            return 0
        result = self.session.execute(
            delete(InboxFileRow).where(
                InboxFileRow.inbox_id == inbox_id,
                InboxFileRow.state == SEEN,
                InboxFileRow.name.in_(list(names)),
            )
        )
        return rowcount(result)

    def files(self, inbox_id: int, limit: int = 50, state: str | None = None) -> Sequence[InboxFileRow]:
        """The inbox's files, newest first."""
        query = (
            select(InboxFileRow)
            .where(InboxFileRow.inbox_id == inbox_id)
            .order_by(InboxFileRow.id.desc())
            .limit(limit)
        )
        if state is not None:
            query = query.where(InboxFileRow.state == state)
        return self.session.scalars(query).all()

    def counts(self, inbox_id: int | None = None) -> dict[tuple[int, str], int]:
        """Files per (inbox id, state)."""
        query = select(InboxFileRow.inbox_id, InboxFileRow.state, func.count()).group_by(
            InboxFileRow.inbox_id, InboxFileRow.state
        )
        if inbox_id is not None:
            query = query.where(InboxFileRow.inbox_id == inbox_id)
        return {(int(i), str(s)): int(n) for i, s, n in self.session.execute(query)}

    def unseen_test_documents(
        self, test_dataset_id: int, train_dataset_id: int | None
    ) -> builtins.list[tuple[str, tuple[str, ...]]]:
        """(text, labels) of the test documents of one dataset whose text is not among the
        training documents of another (what a model trained on that one never saw), id order."""
        query = (
            select(DocumentRow.text, DocumentRow.labels)
            .where(DocumentRow.dataset_id == test_dataset_id, DocumentRow.split == "test")
            .order_by(DocumentRow.id)
        )
        if train_dataset_id is not None:
            trained = select(DocumentRow.text).where(
                DocumentRow.dataset_id == train_dataset_id, DocumentRow.split == "train"
            )
            query = query.where(DocumentRow.text.not_in(trained))
        return [(text, tuple(labels)) for text, labels in self.session.execute(query)]

    def last_error(self, inbox_id: int) -> InboxFileRow | None:
        """The newest failed file of the inbox."""
        return self.session.scalar(
            select(InboxFileRow)
            .where(InboxFileRow.inbox_id == inbox_id, InboxFileRow.error.is_not(None))
            .order_by(InboxFileRow.id.desc())
            .limit(1)
        )
