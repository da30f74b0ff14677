"""Review tasks and answers: the queue queries, leases and their expiry, on a given Session.

Concurrency. Every transaction that hands out, answers or changes a task locks the task's row
before any of its answer rows (PostgreSQL: ``FOR UPDATE``; candidates for a lease with
``FOR UPDATE SKIP LOCKED``, so reviewers never queue up behind each other). SQLite has one
writer at a time: :func:`write_transaction` takes the write lock up front (``BEGIN
IMMEDIATE``), waiting for it under the busy timeout. pysqlite's own deferred ``BEGIN`` would
read first and upgrade to a write lock later, and under WAL a writer that committed in between
makes that upgrade fail at once ("database is locked", the busy timeout not even consulted).
Whatever still fails transiently (a PostgreSQL deadlock or serialization failure, a lost race
on the unique (task, reviewer) row) is recognised by :func:`transient` and retried by the
service.
"""

from __future__ import annotations

import builtins
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from tagloop.domain.loop import LoopSettings, held_out, text_hash
from tagloop.domain.records import Mode
from tagloop.domain.review import EXPIRED, AnswerStatus, NewTask, Queue, TaskStatus
from tagloop.domain.routing import Reason
from tagloop.errors import NotFound
from tagloop.storage.database import Database
from tagloop.storage.pool import PoolRepository
from tagloop.storage.repositories import rowcount
from tagloop.storage.tables import ClassifierRow, DocumentRow, LoopRow, ReviewAnswerRow, ReviewTaskRow

Task = ReviewTaskRow
Ans = ReviewAnswerRow

RELEASE_BATCH = 500
"""Expired leases released per sweep transaction (the rest on the next sweep)."""

_CLASSIFIER_NAME = (
    select(ClassifierRow.name).where(ClassifierRow.id == ReviewTaskRow.classifier_id).scalar_subquery()
)
"""A task's classifier's name, asked for with the task: no statement of its own."""

_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


@contextmanager
def write_transaction(database: Database) -> Iterator[Session]:
    """A transaction that writes: on SQLite it holds the write lock from its first statement."""
    with database.transaction() as session:
        if database.dialect == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))
        yield session


def unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` is a duplicate key (a row with the same unique values exists)."""
    if not isinstance(exc, IntegrityError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.IntegrityError):
        return "UNIQUE" in str(orig)
    return getattr(orig, "sqlstate", None) == "23505"


def transient(exc: BaseException, unique: bool = False) -> bool:
    """Whether ``exc`` is a database failure that the same transaction run again can avoid;
    with ``unique``, a duplicate key too (two transactions making the same lease row)."""
    if unique and unique_violation(exc):
        return True
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return "locked" in str(orig) or "busy" in str(orig)
    return getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def task_row(task: NewTask, now: datetime) -> dict[str, Any]:
    """The ``review_tasks`` row of a new task (checked first) created at ``now``: the one way a
    task is stored, whether by ReviewService.add_tasks or by the routing writer process."""
    task.check()
    return {
        "id": task.id or str(uuid.uuid4()),
        "classifier_id": task.classifier_id,
        "endpoint": task.endpoint,
        "version_id": task.version_id,
        "prediction_id": task.prediction_id,
        "text": task.text,
        "mode": Mode(task.mode).value,
        "choices": builtins.list(task.choices),
        "prediction": task.prediction,
        "reason": str(task.reason),
        "priority": float(task.priority),
        "uncertainty": float(task.uncertainty),
        "oldness": -now.timestamp(),
        "required": task.required,
        "answered": 0,
        "holders": 0,
        "lease_seconds": task.lease_seconds,
        "status": TaskStatus.IN_PROGRESS.value,
        "queue": Queue(task.queue).value,
        "feedback": task.feedback,
        "final_labels": None,
        "loop_name": task.loop_name,
        "flow_definition_id": task.flow_definition_id,
        "input_content": task.input_content,
        "created_at": now,
        "expires_at": now + timedelta(seconds=task.lifetime_seconds) if task.lifetime_seconds else None,
    }


ACTIVE_LEARNING = Reason.ACTIVE_LEARNING.value  # tasks made from the pool


def _picks(ended: Sequence[Any]) -> dict[int, builtins.list[str]]:
    """Of (task id, classifier id, reason) rows of tasks that ended without labels, the
    active-learning ones by classifier: their pool documents go back to the pool."""
    found: dict[int, builtins.list[str]] = {}
    for task_id, classifier_id, reason in ended:
        if reason == ACTIVE_LEARNING and classifier_id is not None:
            found.setdefault(classifier_id, []).append(task_id)
    return found


class ReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    # --- tasks ---------------------------------------------------------------------------

    def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(Task), list(rows))

    def get(self, task_id: str) -> Task:
        row = self.session.get(Task, task_id, populate_existing=True)
        if row is None:
            raise NotFound(f"no review task {task_id!r}")
        return row

    def lock(self, task_id: str) -> Task:
        """The task's row, locked until the transaction ends (NotFound if there is none)."""
        return self.lock_with_answer(task_id, None)[0]

    def lock_with_answer(self, task_id: str, reviewer: str | None) -> tuple[Task, Ans | None, str | None]:
        """The task's row, locked until the transaction ends, with ``reviewer``'s row on it
        (None if they have none) and the classifier's name: one statement (the answer row is
        not locked; every writer of it locks its task first). NotFound if there is no task."""
        query = select(Task, Ans if reviewer is not None else literal(None), _CLASSIFIER_NAME).where(
            Task.id == task_id
        )
        if reviewer is not None:
            query = query.outerjoin(Ans, and_(Ans.task_id == Task.id, Ans.reviewer == reviewer))
        query = query.with_for_update(of=Task)
        found = self.session.execute(query.execution_options(populate_existing=True)).first()
        if found is None:
            raise NotFound(f"no review task {task_id!r}")
        return found[0], found[1], found[2]

    def classifier_name(self, classifier_id: int | None) -> str | None:
        if classifier_id is None:
            return None
        return self.session.scalar(select(ClassifierRow.name).where(ClassifierRow.id == classifier_id))

    def classifier_id(self, name: str) -> int:
        found = self.session.scalar(select(ClassifierRow.id).where(ClassifierRow.name == name))
        if found is None:
            raise NotFound(f"no classifier named {name!r}")
        return found

    def _order(self, order: str) -> tuple[Any, Any]:
        second = Task.oldness if order == "oldest" else Task.uncertainty
        return Task.priority.desc(), second.desc()

    def candidate(
        self, reviewer: str, queue: Queue, classifier_id: int | None, order: str
    ) -> tuple[Task, str | None] | None:
        """The first task of ``queue`` this reviewer may take, locked (PostgreSQL: skipping
        rows other transactions hold), with its classifier's name. Review queue: holders below
        required, and no answer, skip or live lease of this reviewer on it. One backward scan
        of the queue's order index. Moderate queue: its first task."""
        query = (
            select(Task, _CLASSIFIER_NAME)
            .where(Task.queue == queue.value)
            .order_by(*self._order(order))
            .limit(1)
        )
        if queue is Queue.REVIEW:
            mine = exists().where(
                Ans.task_id == Task.id, Ans.reviewer == reviewer, Ans.status != AnswerStatus.RELEASED.value
            )
            query = query.where(Task.holders < Task.required, ~mine)
        if classifier_id is not None:
            query = query.where(Task.classifier_id == classifier_id)
        if self.postgres:
            query = query.with_for_update(of=Task, skip_locked=True)
        return self._task_and_name(query)

    def _task_and_name(self, query: Any) -> tuple[Task, str | None] | None:
        found = self.session.execute(query.execution_options(populate_existing=True)).first()
        return (found[0], found[1]) if found is not None else None

    def skipped_candidate(
        self, reviewer: str, queue: Queue, classifier_id: int | None
    ) -> tuple[Task, str | None] | None:
        """The task this reviewer skipped longest ago that is still open to them, with its
        classifier's name."""
        query = (
            select(Task, _CLASSIFIER_NAME)
            .join(Ans, Ans.task_id == Task.id)
            .where(
                Ans.reviewer == reviewer,
                Ans.status == AnswerStatus.SKIPPED.value,
                Task.queue == queue.value,
            )
            .order_by(Ans.answered_at, Ans.id)
            .limit(1)
        )
        if queue is Queue.REVIEW:
            query = query.where(Task.holders < Task.required)
        if classifier_id is not None:
            query = query.where(Task.classifier_id == classifier_id)
        if self.postgres:
            query = query.with_for_update(of=Task, skip_locked=True)
        return self._task_and_name(query)

    def live_lease(
        self, reviewer: str, queue: Queue, classifier_id: int | None, now: datetime
    ) -> tuple[Task, Ans, str | None] | None:
        """The reviewer's newest lease that has not run out, on a task still in ``queue``, with
        the task's classifier's name."""
        query = (
            select(Task, Ans, _CLASSIFIER_NAME)
            .join(Ans, Ans.task_id == Task.id)
            .where(
                Ans.reviewer == reviewer,
                Ans.status == AnswerStatus.LEASED.value,
                Ans.leased_until > now,
                Task.queue == queue.value,
            )
            .order_by(Ans.leased_at.desc(), Ans.id.desc())
            .limit(1)
        )
        if classifier_id is not None:
            query = query.where(Task.classifier_id == classifier_id)
        found = self.session.execute(query.execution_options(populate_existing=True)).first()
        return (found[0], found[1], found[2]) if found is not None else None

    def take(self, task: Task, reviewer: str, now: datetime, role: str = "reviewer") -> datetime:
        """Lease ``task`` (locked by the caller) to ``reviewer`` until the returned time: their
        row becomes ``leased`` (made if missing) and the task counts one more holder. Core
        statements: this is the hot path of every answer."""
        until = now + timedelta(seconds=task.lease_seconds)
        lease = {
            "status": AnswerStatus.LEASED.value,
            "leased_at": now,
            "leased_until": until,
            "answered_at": None,
        }
        # one statement whether the reviewer's row exists (a lease that was released) or not
        make = postgresql_insert if self.postgres else sqlite_insert
        upsert = make(Ans).values(task_id=task.id, reviewer=reviewer, role=role, **lease)
        upsert = upsert.on_conflict_do_update(index_elements=[Ans.task_id, Ans.reviewer], set_=lease)
        one_more = update(Task).values(holders=Task.holders + 1)
        if self.postgres:  # both in one statement: the lease's upsert is the update's CTE
            leased = upsert.returning(Ans.task_id).cte("leased")
            one_more = one_more.where(Task.id.in_(select(leased.c.task_id)))
        else:
            self.session.execute(upsert, execution_options={"synchronize_session": False})
            one_more = one_more.where(Task.id == task.id)
        self.session.execute(one_more, execution_options={"synchronize_session": False})
        return until

    # --- answers -------------------------------------------------------------------------

    def answer(self, task_id: str, reviewer: str) -> Ans | None:
        query = select(Ans).where(Ans.task_id == task_id, Ans.reviewer == reviewer)
        return self.session.scalars(query.execution_options(populate_existing=True)).first()

    def answers(self, task_id: str, status: AnswerStatus | None = None) -> builtins.list[Ans]:
        """A task's rows (a handful), optionally of one status: filtered here, so the lookup
        goes by the (task_id, reviewer) index whatever the planner knows of status."""
        query = select(Ans).where(Ans.task_id == task_id).order_by(Ans.id)
        rows = self.session.scalars(query.execution_options(populate_existing=True))
        return [row for row in rows if status is None or row.status == status.value]

    def last_answer(self, reviewer: str) -> Ans | None:
        """The reviewer's most recent answer (not skip)."""
        query = (
            select(Ans)
            .where(Ans.reviewer == reviewer, Ans.status == AnswerStatus.ANSWERED.value)
            .order_by(Ans.answered_at.desc(), Ans.id.desc())
            .limit(1)
        )
        return self.session.scalars(query).first()

    def release_leases(self, task: Task) -> int:
        """Give back every live lease on ``task`` (locked by the caller)."""
        result = self.session.execute(
            update(Ans)
            .where(Ans.task_id == task.id, Ans.status == AnswerStatus.LEASED.value)
            .values(status=AnswerStatus.RELEASED.value, leased_until=None)
            .execution_options(synchronize_session=False)
        )
        released = rowcount(result)
        task.holders = max(0, task.holders - released)
        return released

    # --- sweeps --------------------------------------------------------------------------

    def release_expired(self, now: datetime, limit: int = RELEASE_BATCH) -> int:
        """Release leases that ran out (status ``released``, their task's holders one less).
        Task rows are locked before answer rows, as everywhere. Indexed on (status, leased_until)."""
        expired = and_(Ans.status == AnswerStatus.LEASED.value, Ans.leased_until < now)
        task_ids = list(self.session.scalars(select(Ans.task_id).where(expired).limit(limit)).unique())
        if not task_ids:
            return 0
        if self.postgres:
            self.session.execute(
                select(Task.id).where(Task.id.in_(task_ids)).order_by(Task.id).with_for_update()
            )
        released = self.session.scalars(
            update(Ans)
            .where(Ans.task_id.in_(task_ids), expired)
            .values(status=AnswerStatus.RELEASED.value, leased_until=None)
            .returning(Ans.task_id)
            .execution_options(synchronize_session=False)
        ).all()
        counts = Counter(released)
        table = Task.__table__
        assert isinstance(table, Table)
        if counts:
            self.session.execute(
                update(table)
                .where(table.c.id == bindparam("task"))
                .values(holders=table.c.holders - bindparam("n")),
                [{"task": task_id, "n": n} for task_id, n in counts.items()],
            )
        return len(released)

    def expire(self, now: datetime) -> builtins.list[str]:
        """Fail the open tasks whose availability ran out (A2I: status Failed, FailureCode
        Expired); they leave the queues and their leases are released."""
        expired = self.session.execute(
            update(Task)
            .where(Task.status == TaskStatus.IN_PROGRESS.value, Task.expires_at < now)
            .values(
                status=TaskStatus.FAILED.value,
                queue=None,
                failure_code=EXPIRED,
                failure_reason="The task was not completed within its availability lifetime.",
                completed_at=now,
            )
            .returning(Task.id, Task.classifier_id, Task.reason)
            .execution_options(synchronize_session=False)
        ).all()
        ids = [task_id for task_id, _, _ in expired]
        for classifier_id, task_ids in _picks(expired).items():
            PoolRepository(self.session).return_to_pool(classifier_id, task_ids)
        if ids:
            self.session.execute(
                update(Ans)
                .where(Ans.task_id.in_(ids), Ans.status == AnswerStatus.LEASED.value)
                .values(status=AnswerStatus.RELEASED.value, leased_until=None)
                .execution_options(synchronize_session=False)
            )
        return ids

    def return_to_pool(self, task: Task) -> None:
        """An active-learning task that ended without labels (stopped): its pool document waits
        in the pool again."""
        if task.reason == ACTIVE_LEARNING and task.classifier_id is not None:
            PoolRepository(self.session).return_to_pool(task.classifier_id, [task.id])

    # --- verified documents --------------------------------------------------------------

    def write_document(self, task: Task, labels: Sequence[str], origin: str, replace: bool = True) -> None:
        """The task's verified document (with ``replace``, replacing one written before; a task
        that was in progress has none: undo deletes it when it reopens one)."""
        assert task.classifier_id is not None
        if replace:
            self.delete_document(task.id)
        hash_ = text_hash(task.text)
        self.session.execute(
            insert(DocumentRow).values(
                classifier_id=task.classifier_id,
                dataset_id=None,
                text=task.text,
                labels=list(labels),
                origin=origin,
                split="test" if held_out(hash_, self.test_share(task.classifier_id)) else "train",
                line=None,
                review_task_id=task.id,
                text_hash=hash_,
            )
        )

    def test_share(self, classifier_id: int) -> float:
        """The share of verified documents the classifier's loop holds out (its frozen test
        set, ``domain.loop.held_out``): its loop's setting, else the default."""
        stored = self.session.scalar(select(LoopRow.settings).where(LoopRow.classifier_id == classifier_id))
        if stored and "test_share" in stored:
            return float(stored["test_share"])
        return LoopSettings().test_share

    def delete_document(self, task_id: str) -> None:
        self.session.execute(
            delete(DocumentRow)
            .where(DocumentRow.review_task_id == task_id)
            .execution_options(synchronize_session=False)
        )

    # --- reading -------------------------------------------------------------------------

    def list(
        self,
        *,
        classifier_id: int | None = None,
        status: str | None = None,
        queue: str | None = None,
        reason: str | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> builtins.list[Task]:
        """Tasks newest first; ``after`` (created_at and id of the last of a page) pages on."""
        query = select(Task).order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)
        if classifier_id is not None:
            query = query.where(Task.classifier_id == classifier_id)
        if status is not None:
            query = query.where(Task.status == status)
        if queue is not None:
            query = query.where(Task.queue == queue)
        if reason is not None:
            query = query.where(Task.reason == reason)
        if after is not None:
            created_at, task_id = after
            query = query.where(
                Task.created_at <= created_at, or_(Task.created_at < created_at, Task.id < task_id)
            )
        return list(self.session.scalars(query))

    def of_prediction(self, prediction_id: str, limit: int) -> builtins.list[Task]:
        """The tasks made for a logged prediction, oldest first (``ix_review_tasks_prediction``)."""
        query = (
            select(Task)
            .where(Task.prediction_id == prediction_id)
            .order_by(Task.created_at, Task.id)
            .limit(limit)
        )
        return builtins.list(self.session.scalars(query))

    def count_queue(self, queue: Queue, classifier_id: int | None = None) -> int:
        query = select(func.count()).select_from(Task).where(Task.queue == queue.value)
        if classifier_id is not None:
            query = query.where(Task.classifier_id == classifier_id)
        return int(self.session.scalar(query) or 0)

    def count_answers(self, reviewer: str, since: datetime | None = None) -> int:
        query = (
            select(func.count())
            .select_from(Ans)
            .where(Ans.reviewer == reviewer, Ans.status == AnswerStatus.ANSWERED.value)
        )
        if since is not None:
            query = query.where(Ans.answered_at >= since)
        return int(self.session.scalar(query) or 0)

    def answered_tasks(self, classifier_id: int) -> builtins.list[tuple[Task, builtins.list[Ans]]]:
        """A classifier's tasks with at least one answer holding labels, with those answers."""
        answers = (
            select(Ans, Task)
            .join(Task, Task.id == Ans.task_id)
            .where(
                Task.classifier_id == classifier_id,
                Ans.status == AnswerStatus.ANSWERED.value,
                Ans.labels.is_not(None),
            )
            .order_by(Task.id, Ans.id)
        )
        grouped: dict[str, tuple[Task, builtins.list[Ans]]] = {}
        for answer, task in self.session.execute(answers):
            grouped.setdefault(task.id, (task, []))[1].append(answer)
        return list(grouped.values())

    def labelled_answers(self, classifier_id: int) -> builtins.list[tuple[str, str, builtins.list[str]]]:
        """(task id, reviewer, labels) of every labelled answer to the classifier's multi-class
        tasks, by task: what reviewer reliabilities are estimated from (no texts read)."""
        query = (
            select(Ans.task_id, Ans.reviewer, Ans.labels)
            .join(Task, Task.id == Ans.task_id)
            .where(
                Task.classifier_id == classifier_id,
                Task.mode == Mode.MULTI_CLASS.value,
                Ans.status == AnswerStatus.ANSWERED.value,
                Ans.labels.is_not(None),
            )
            .order_by(Ans.task_id, Ans.id)
        )
        rows = self.session.execute(query)
        return [(task_id, reviewer, list(labels or ())) for task_id, reviewer, labels in rows]
