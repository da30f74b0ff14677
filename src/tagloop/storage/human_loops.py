"""The queries of A2I's resources: task UIs (``human_task_uis``), flow definitions
(``flow_definitions``) and human loops, which are review tasks with a ``loop_name``
(``review_tasks``; ReviewService writes them, these queries read them by loop name and flow,
delete a finished one and record where its ``output.json`` went).

Listings are pages in creation order (keyset on ``created_at`` and the primary key), so a
page never repeats or skips a row when rows are added meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from tagloop.errors import InvalidRequest
from tagloop.storage.repositories import rowcount
from tagloop.storage.tables import (
    ClassifierRow,
    DocumentRow,
    FlowDefinitionRow,
    HumanTaskUiRow,
    ModelVersionRow,
    ReviewAnswerRow,
    ReviewTaskRow,
)

IN_PROGRESS = "InProgress"


@dataclass(frozen=True)
class PageRequest:
    """Which page of a listing: creation-time bounds (exclusive), order, token and size."""

    after: datetime | None = None
    before: datetime | None = None
    ascending: bool = False  # newest first, as AWS lists by default
    token: str | None = None
    limit: int = 100


def _encode(created_at: datetime, key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), key]).encode()).decode()


def _decode(token: str) -> tuple[datetime, Any]:
    try:
        created, key = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        return datetime.fromisoformat(created), key
    except (binascii.Error, ValueError, TypeError, UnicodeError):
        raise InvalidRequest("Invalid NextToken") from None


def _page(
    session: Session, query: Select[Any], model: Any, page: PageRequest
) -> tuple[list[Any], str | None]:
    created, key = model.created_at, model.id
    if page.after is not None:
        query = query.where(created > page.after)
    if page.before is not None:
        query = query.where(created < page.before)
    if page.token:
        at, last = _decode(page.token)
        if page.ascending:
            query = query.where(or_(created > at, and_(created == at, key > last)))
        else:
            query = query.where(or_(created < at, and_(created == at, key < last)))
    order = (created.asc(), key.asc()) if page.ascending else (created.desc(), key.desc())
    rows = list(session.scalars(query.order_by(*order).limit(page.limit + 1)))
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return rows, _encode(rows[-1].created_at, rows[-1].id) if more and rows else None


class HumanLoopRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- task UIs -----------------------------------------------------------------------

    def add_task_ui(self, name: str, content: str, tags: list[dict[str, str]]) -> HumanTaskUiRow:
        row = HumanTaskUiRow(name=name, content=content, tags=tags)
        self.session.add(row)
        self.session.flush()
        return row

    def task_ui(self, name: str) -> HumanTaskUiRow | None:
        return self.session.scalar(select(HumanTaskUiRow).where(HumanTaskUiRow.name == name))

    def task_ui_by_id(self, ui_id: int) -> HumanTaskUiRow | None:
        return self.session.get(HumanTaskUiRow, ui_id)

    def task_uis(self, page: PageRequest) -> tuple[list[HumanTaskUiRow], str | None]:
        return _page(self.session, select(HumanTaskUiRow), HumanTaskUiRow, page)

    def flows_using(self, ui_id: int) -> int:
        query = (
            select(func.count()).select_from(FlowDefinitionRow).where(FlowDefinitionRow.task_ui_id == ui_id)
        )
        return int(self.session.scalar(query) or 0)

    def delete_task_ui(self, row: HumanTaskUiRow) -> None:
        self.session.delete(row)
        self.session.flush()

    # --- flow definitions ---------------------------------------------------------------

    def add_flow(self, **fields: Any) -> FlowDefinitionRow:
        row = FlowDefinitionRow(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def flow(self, name: str) -> FlowDefinitionRow | None:
        return self.session.scalar(select(FlowDefinitionRow).where(FlowDefinitionRow.name == name))

    def flow_by_id(self, flow_id: int) -> FlowDefinitionRow | None:
        return self.session.get(FlowDefinitionRow, flow_id)

    def flows(self, page: PageRequest) -> tuple[list[FlowDefinitionRow], str | None]:
        return _page(self.session, select(FlowDefinitionRow), FlowDefinitionRow, page)

    def active_loops(self, flow_id: int) -> int:
        query = (
            select(func.count())
            .select_from(ReviewTaskRow)
            .where(ReviewTaskRow.flow_definition_id == flow_id, ReviewTaskRow.status == IN_PROGRESS)
        )
        return int(self.session.scalar(query) or 0)

    def delete_flow(self, row: FlowDefinitionRow) -> None:
        """The flow definition and its (finished) loops."""
        self._unlink_documents(select(ReviewTaskRow.id).where(ReviewTaskRow.flow_definition_id == row.id))
        self.session.execute(delete(ReviewTaskRow).where(ReviewTaskRow.flow_definition_id == row.id))
        self.session.delete(row)
        self.session.flush()

    def classifier_labels(self, name: str) -> tuple[ClassifierRow, list[str]] | None:
        """A classifier and the labels of its newest version that has any (None: no classifier)."""
        classifier = self.session.scalar(select(ClassifierRow).where(ClassifierRow.name == name))
        if classifier is None:
            return None
        query = (
            select(ModelVersionRow.labels)
            .where(ModelVersionRow.classifier_id == classifier.id)
            .order_by(ModelVersionRow.id.desc())
        )
        for labels in self.session.scalars(query):
            if labels:
                return classifier, list(labels)
        return classifier, []

    # --- human loops (review tasks with a loop name) ------------------------------------

    def loop(self, name: str) -> ReviewTaskRow | None:
        return self.session.scalar(select(ReviewTaskRow).where(ReviewTaskRow.loop_name == name))

    def loops(self, flow_id: int | None, page: PageRequest) -> tuple[list[ReviewTaskRow], str | None]:
        query = select(ReviewTaskRow).where(ReviewTaskRow.loop_name.is_not(None))
        if flow_id is not None:
            query = query.where(ReviewTaskRow.flow_definition_id == flow_id)
        return _page(self.session, query, ReviewTaskRow, page)

    def delete_loop(self, row: ReviewTaskRow) -> None:
        self._unlink_documents(select(ReviewTaskRow.id).where(ReviewTaskRow.id == row.id))
        self.session.delete(row)
        self.session.flush()

    def unwritten_outputs(self, limit: int) -> builtins.list[str]:
        """Task ids of completed loops whose output.json is not written yet (its write failed)."""
        query = (
            select(ReviewTaskRow.id)
            .where(
                ReviewTaskRow.loop_name.is_not(None),
                ReviewTaskRow.status == "Completed",
                ReviewTaskRow.output_uri.is_(None),
            )
            .order_by(ReviewTaskRow.completed_at)
            .limit(limit)
        )
        return builtins.list(self.session.scalars(query))

    def set_output(self, task_id: str, uri: str) -> bool:
        done = self.session.execute(
            update(ReviewTaskRow).where(ReviewTaskRow.id == task_id).values(output_uri=uri)
        )
        return rowcount(done) == 1

    def answers(self, task_id: str) -> Sequence[ReviewAnswerRow]:
        """The answers given on a task, oldest first."""
        query = (
            select(ReviewAnswerRow)
            .where(ReviewAnswerRow.task_id == task_id, ReviewAnswerRow.status == "answered")
            .order_by(ReviewAnswerRow.answered_at, ReviewAnswerRow.id)
        )
        return list(self.session.scalars(query))

    def _unlink_documents(self, task_ids: Select[Any]) -> None:
        """Verified documents outlive their task (SQLite does not apply ON DELETE SET NULL
        without its foreign keys on, so the link is cleared here on every backend)."""
        self.session.execute(
            update(DocumentRow).where(DocumentRow.review_task_id.in_(task_ids)).values(review_task_id=None)
        )
