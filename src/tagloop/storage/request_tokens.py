"""ClientRequestTokens of the Comprehend API's create and start operations (services/request_tokens.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tagloop.storage.tables import RequestTokenRow, utcnow


class RequestTokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, caller: str, operation: str, token: str) -> RequestTokenRow | None:
        return self.session.scalars(
            select(RequestTokenRow).where(
                RequestTokenRow.caller == caller,
                RequestTokenRow.operation == operation,
                RequestTokenRow.token == token,
            )
        ).one_or_none()

    def add(self, caller: str, operation: str, token: str, digest: str) -> int:
        """Reserve the token (raises IntegrityError if another request holds it)."""
        row = RequestTokenRow(
            caller=caller, operation=operation, token=token, digest=digest, created_at=utcnow()
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def answer(self, id_: int, response: dict[str, Any]) -> None:
        self.session.execute(
            update(RequestTokenRow)
            .where(RequestTokenRow.id == id_)
            .values(response=response, answered_at=utcnow())
        )

    def release(self, id_: int) -> None:
        self.session.execute(delete(RequestTokenRow).where(RequestTokenRow.id == id_))

    def forget_before(self, moment: datetime) -> None:
        self.session.execute(delete(RequestTokenRow).where(RequestTokenRow.created_at < moment))
