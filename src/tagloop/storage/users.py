"""Web users and their sessions (tables ``users`` and ``web_sessions``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tagloop.storage.tables import UserRow, WebSessionRow


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **fields: Any) -> UserRow:
        row = UserRow(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def by_name(self, name: str, *, for_update: bool = False) -> UserRow | None:
        query = select(UserRow).where(UserRow.name == name)
        if for_update:
            query = query.with_for_update()
        return self.session.scalar(query)

    def list(self) -> Sequence[UserRow]:
        return self.session.scalars(select(UserRow).order_by(UserRow.name)).all()

    def any(self) -> bool:
        return self.session.scalar(select(UserRow.id).limit(1)) is not None

    def add_session(self, **fields: Any) -> WebSessionRow:
        row = WebSessionRow(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def session_with_user(self, digest: str) -> tuple[WebSessionRow, UserRow] | None:
        """The session whose token hashes to ``digest`` and its user, in one query."""
        query = (
            select(WebSessionRow, UserRow)
            .join(UserRow, UserRow.id == WebSessionRow.user_id)
            .where(WebSessionRow.token_sha256 == digest)
        )
        found = self.session.execute(query).first()
        return (found[0], found[1]) if found is not None else None

    def touch_session(self, digest: str, when: datetime) -> None:
        self.session.execute(
            update(WebSessionRow).where(WebSessionRow.token_sha256 == digest).values(last_seen=when)
        )

    def delete_session(self, digest: str) -> None:
        self.session.execute(delete(WebSessionRow).where(WebSessionRow.token_sha256 == digest))

    def delete_sessions_of(self, user_id: int) -> None:
        self.session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))

    def delete_expired_sessions(self, now: datetime) -> None:
        self.session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
