"""Repositories: the queries services need, one class per aggregate, on a given Session."""

from __future__ import annotations

import builtins
import itertools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.orm import Session

from tagloop.domain.records import JobStatus, Origin
from tagloop.errors import InvalidRequest, NotFound
from tagloop.storage.tables import (
    ApiKeyRow,
    ClassifierRow,
    DatasetRow,
    DocumentRow,
    EndpointRow,
    JobRow,
    ModelVersionRow,
    PredictionRow,
    WorkerRow,
    utcnow,
)

PREFIX_MATCHES = 10  # ids listed when a prefix is ambiguous


def starts_with(column: Any, prefix: str) -> Any:
    """``column`` starts with ``prefix``: ``LIKE 'prefix%'`` (``%``, ``_`` and the escape
    character in ``prefix`` taken literally), and the same characters compared exactly, since
    SQLite's LIKE ignores ASCII case."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return and_(column.like(escaped + "%", escape="\\"), func.substr(column, 1, len(prefix)) == prefix)


def one_match(what: str, prefix: str, matches: Sequence[str]) -> str:
    """The one id of ``matches`` (those starting with ``prefix``, at most PREFIX_MATCHES + 1).

    Raises NotFound when none does, InvalidRequest naming them when several do.
    """
    if prefix in matches or len(matches) == 1:
        return prefix if prefix in matches else matches[0]
    if not matches:
        raise NotFound(f"no {what} {prefix!r}")
    shown = ", ".join(matches[:PREFIX_MATCHES])
    more = " and more" if len(matches) > PREFIX_MATCHES else ""
    raise InvalidRequest(
        f"{prefix!r} is the start of several {what} ids ({shown}{more}): give more characters"
    )


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (its result is a cursor result)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


class ClassifierRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, name: str) -> ClassifierRow | None:
        return self.session.scalar(select(ClassifierRow).where(ClassifierRow.name == name))

    def get(self, name: str) -> ClassifierRow:
        row = self.find(name)
        if row is None:
            raise NotFound(f"no classifier named {name!r}")
        return row

    def add(self, name: str, mode: str, label_delimiter: str) -> ClassifierRow:
        row = ClassifierRow(name=name, mode=mode, label_delimiter=label_delimiter)
        self.session.add(row)
        self.session.flush()
        return row

    def list(self) -> Sequence[ClassifierRow]:
        return self.session.scalars(select(ClassifierRow).order_by(ClassifierRow.name)).all()

    def delete(self, row: ClassifierRow) -> None:
        self.session.delete(row)


class DatasetRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, classifier_id: int, source: str, format: str) -> DatasetRow:
        row = DatasetRow(classifier_id=classifier_id, source=source, format=format, fingerprint="")
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, dataset_id: int) -> DatasetRow:
        row = self.session.get(DatasetRow, dataset_id)
        if row is None:
            raise NotFound(f"no dataset {dataset_id}")
        return row


class DocumentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, rows: Iterable[dict[str, Any]]) -> None:
        batch = list(rows)
        if batch:
            self.session.execute(insert(DocumentRow), batch)

    def labels(self, dataset_id: int, split: str | None = None) -> list[tuple[int, tuple[str, ...]]]:
        """(id, labels) of a dataset's documents in id order, optionally of one split."""
        query = select(DocumentRow.id, DocumentRow.labels).where(DocumentRow.dataset_id == dataset_id)
        if split is not None:
            query = query.where(DocumentRow.split == split)
        return [(id_, tuple(labels)) for id_, labels in self.session.execute(query.order_by(DocumentRow.id))]

    def texts(self, dataset_id: int, split: str, chunk: int = 2_000) -> Iterator[str]:
        """Stream the texts of one split of a dataset in id order without loading them all."""
        query = (
            select(DocumentRow.text)
            .where(DocumentRow.dataset_id == dataset_id, DocumentRow.split == split)
            .order_by(DocumentRow.id)
            .execution_options(yield_per=chunk)
        )
        for (text,) in self.session.execute(query):
            yield text

    def texts_by_id(self, ids: Sequence[int], chunk: int = 1_000) -> dict[int, str]:
        """The texts of the documents ``ids`` (those that still exist), by id."""
        found: dict[int, str] = {}
        for start in range(0, len(ids), chunk):
            query = select(DocumentRow.id, DocumentRow.text).where(
                DocumentRow.id.in_(ids[start : start + chunk])
            )
            found.update((id_, text) for id_, text in self.session.execute(query))
        return found

    def set_split(self, ids: Sequence[int], split: str, chunk: int = 5_000) -> None:
        for start in range(0, len(ids), chunk):
            part = list(ids[start : start + chunk])
            self.session.execute(update(DocumentRow).where(DocumentRow.id.in_(part)).values(split=split))

    VERIFIED_ORIGINS = (Origin.REVIEW.value, Origin.FEEDBACK.value)

    def copy_into(self, dataset_id: int, split: str, source: Any) -> None:
        """Copy the documents ``source`` (a WHERE clause on DocumentRow) selects into a dataset's
        split, in one INSERT … SELECT (texts never travel through Python)."""
        columns = ("classifier_id", "dataset_id", "text", "labels", "origin", "split", "line")
        chosen = (
            select(
                DocumentRow.classifier_id,
                literal(dataset_id),
                DocumentRow.text,
                DocumentRow.labels,
                DocumentRow.origin,
                literal(split),
                DocumentRow.line,
            )
            .where(source)
            .order_by(DocumentRow.id)
        )
        self.session.execute(insert(DocumentRow).from_select(columns, chosen))

    @staticmethod
    def of_split(dataset_id: int, split: str, origin: str | None = None) -> Any:
        """The WHERE clause of one split of a dataset (of one origin)."""
        clause = (DocumentRow.dataset_id == dataset_id) & (DocumentRow.split == split)
        return clause if origin is None else clause & (DocumentRow.origin == origin)

    @classmethod
    def verified(cls, classifier_id: int) -> Any:
        """The WHERE clause of a classifier's verified documents: consolidated from review tasks
        (origin review or feedback) and not a copy inside some version's dataset."""
        return (
            (DocumentRow.classifier_id == classifier_id)
            & DocumentRow.dataset_id.is_(None)
            & DocumentRow.origin.in_(cls.VERIFIED_ORIGINS)
        )

    def verified_rows(self, classifier_id: int) -> Iterator[tuple[str, tuple[str, ...], str]]:
        """(text, labels, origin) of a classifier's verified documents, oldest first."""
        query = (
            select(DocumentRow.text, DocumentRow.labels, DocumentRow.origin)
            .where(self.verified(classifier_id))
            .order_by(DocumentRow.id)
            .execution_options(yield_per=2_000)
        )
        for text, labels, origin in self.session.execute(query):
            yield text, tuple(labels), origin

    def verified_count(self, classifier_id: int) -> int:
        return int(self.session.scalar(select(func.count()).where(self.verified(classifier_id))) or 0)

    def drop_test_texts_from_training(self, train_id: int, test_id: int) -> int:
        """Delete the training documents of ``train_id`` whose text is that of a test document
        of ``test_id`` (a test document is never trained on); returns how many."""
        result = self.session.execute(
            delete(DocumentRow)
            .where(self._trains_on_test_text(train_id, test_id))
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)

    def count_test_texts_in_training(self, train_id: int, test_id: int) -> int:
        """How many training documents of ``train_id`` have the text of a test document of
        ``test_id`` (what :meth:`drop_test_texts_from_training` would delete)."""
        return int(
            self.session.scalar(select(func.count()).where(self._trains_on_test_text(train_id, test_id))) or 0
        )

    @staticmethod
    def _trains_on_test_text(train_id: int, test_id: int) -> ColumnElement[bool]:
        test_texts = select(DocumentRow.text).where(
            DocumentRow.dataset_id == test_id, DocumentRow.split == "test"
        )
        return and_(
            DocumentRow.dataset_id == train_id,
            DocumentRow.split == "train",
            DocumentRow.text.in_(test_texts),
        )

    def origins(self, dataset_id: int, split: str) -> dict[str, int]:
        """How many documents of a dataset's split came from each origin."""
        query = (
            select(DocumentRow.origin, func.count())
            .where(DocumentRow.dataset_id == dataset_id, DocumentRow.split == split)
            .group_by(DocumentRow.origin)
        )
        return {origin: int(count) for origin, count in self.session.execute(query)}

    def count_for_classifier(self, classifier_id: int) -> int:
        query = select(func.count()).where(DocumentRow.classifier_id == classifier_id)
        return int(self.session.scalar(query) or 0)

    def count(self, dataset_id: int, split: str) -> int:
        query = select(func.count()).where(DocumentRow.dataset_id == dataset_id, DocumentRow.split == split)
        return int(self.session.scalar(query) or 0)


class ModelVersionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, classifier_id: int, name: str | None, **fields: Any) -> ModelVersionRow:
        number = (
            self.session.scalar(
                select(func.max(ModelVersionRow.number)).where(ModelVersionRow.classifier_id == classifier_id)
            )
            or 0
        ) + 1
        if name is None:  # v<number>, or the next v<k> a user has not taken by name already
            taken = set(
                self.session.scalars(
                    select(ModelVersionRow.name).where(
                        ModelVersionRow.classifier_id == classifier_id, ModelVersionRow.name.like("v%")
                    )
                )
            )
            name = next(f"v{k}" for k in itertools.count(number) if f"v{k}" not in taken)
        row = ModelVersionRow(classifier_id=classifier_id, number=number, name=name, **fields)
        self.session.add(row)
        self.session.flush()
        return row

    def find(self, classifier_id: int, name: str) -> ModelVersionRow | None:
        return self.session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.classifier_id == classifier_id, ModelVersionRow.name == name
            )
        )

    def get(self, version_id: int) -> ModelVersionRow:
        row = self.session.get(ModelVersionRow, version_id)
        if row is None:
            raise NotFound(f"no model version {version_id}")
        return row

    def list(self, classifier_id: int) -> Sequence[ModelVersionRow]:
        query = (
            select(ModelVersionRow)
            .where(ModelVersionRow.classifier_id == classifier_id)
            .order_by(ModelVersionRow.number)
        )
        return self.session.scalars(query).all()

    def latest(self, classifier_id: int, status: str) -> ModelVersionRow | None:
        query = (
            select(ModelVersionRow)
            .where(ModelVersionRow.classifier_id == classifier_id, ModelVersionRow.status == status)
            .order_by(ModelVersionRow.number.desc())
            .limit(1)
        )
        return self.session.scalar(query)

    def transition(self, version_id: int, status: str, when: Sequence[str], **fields: Any) -> bool:
        """Set a version's status (and ``fields``) only if it is in one of ``when``: a conditional
        UPDATE, so a concurrent change is never overwritten; False if it was not."""
        result = self.session.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.id == version_id, ModelVersionRow.status.in_(list(when)))
            .values(status=status, **fields)
        )
        return bool(rowcount(result) == 1)

    def set_status(self, version_id: int, status: str, **fields: Any) -> None:
        values = {"status": status, **fields}
        self.session.execute(update(ModelVersionRow).where(ModelVersionRow.id == version_id).values(**values))


_ACTIVE = (JobStatus.IN_PROGRESS.value, JobStatus.STOP_REQUESTED.value)


class JobRepository:
    """Job rows, and the lease operations that let many workers share them safely.

    A worker *claims* a job by a conditional UPDATE (only if it is still claimable), so two
    workers can never both win, on SQLite or PostgreSQL; it keeps the job by renewing its
    lease, and every later write is conditional on still owning that lease.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, kind: str, payload: dict[str, Any], max_attempts: int = 3, **links: Any) -> JobRow:
        row = JobRow(
            id=links.pop("id", None) or uuid.uuid4().hex,
            kind=kind,
            status=JobStatus.SUBMITTED.value,
            payload=payload,
            max_attempts=max_attempts,
            **links,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, job_id: str) -> JobRow:
        row = self.session.get(JobRow, job_id)
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return row

    def lock(self, job_id: str) -> JobRow | None:
        """The job row, locked until the transaction ends.

        PostgreSQL locks the row (FOR UPDATE). SQLite ignores FOR UPDATE, so a no-op write
        takes the database's write lock first: reads after it see every committed change and
        no other writer gets in before this transaction ends.
        """
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(id=JobRow.id)
                .execution_options(synchronize_session=False)
            )
        query = select(JobRow).where(JobRow.id == job_id).with_for_update()
        return self.session.scalars(query.execution_options(populate_existing=True)).first()

    def stop_family(self, job_id: str) -> bool:
        """Stop a job and its children: not-yet-claimed ones become STOPPED, claimed or running
        ones STOP_REQUESTED. Conditional UPDATEs: a concurrent claim is never overwritten.
        Returns whether the job itself was stopped outright."""
        now = utcnow()
        family = or_(JobRow.id == job_id, JobRow.parent_id == job_id)
        unclaimed = and_(JobRow.status == JobStatus.SUBMITTED.value, JobRow.lease_owner.is_(None))
        stopped = self.session.execute(
            update(JobRow)
            .where(family, unclaimed)
            .values(
                status=JobStatus.STOPPED.value, ended_at=now, error="stopped on request before it started"
            )
            .returning(JobRow.id)
            .execution_options(synchronize_session=False)
        ).scalars()
        stopped_ids = set(stopped)
        self.session.execute(
            update(JobRow)
            .where(family, JobRow.status.in_([JobStatus.SUBMITTED.value, JobStatus.IN_PROGRESS.value]))
            .values(status=JobStatus.STOP_REQUESTED.value)
            .execution_options(synchronize_session=False)
        )
        return job_id in stopped_ids

    def children(self, parent_id: str) -> Sequence[JobRow]:
        query = select(JobRow).where(JobRow.parent_id == parent_id).order_by(JobRow.created_at, JobRow.id)
        return self.session.scalars(query.execution_options(populate_existing=True)).all()

    def has_children(self, parent_id: str) -> bool:
        return (
            self.session.scalar(select(JobRow.id).where(JobRow.parent_id == parent_id).limit(1)) is not None
        )

    def list(
        self,
        limit: int = 100,
        status: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> Sequence[JobRow]:
        """Top-level jobs, newest first (the parts of a sharded job are listed with it).

        Optionally only those of one status, one kind, or whose payload's ``name`` is ``name``;
        ``before`` (the ``created_at`` and ``id`` of the last job of a page) gives the next page.
        Indexes on ``(parent_id, created_at, id)`` and ``(kind, created_at, id)`` make a page a
        short index scan however many jobs there are.
        """
        query = (
            select(JobRow)
            .where(JobRow.parent_id.is_(None))
            .order_by(JobRow.created_at.desc(), JobRow.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(JobRow.status == status)
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        if name is not None:
            query = query.where(JobRow.payload["name"].as_string() == name)
        if before is not None:
            created_at, job_id = before
            # the first term alone bounds the index scan; the second leaves out what was listed
            query = query.where(
                JobRow.created_at <= created_at, or_(JobRow.created_at < created_at, JobRow.id < job_id)
            )
        return self.session.scalars(query).all()

    def ids_starting(self, prefix: str, limit: int = PREFIX_MATCHES + 1) -> builtins.list[str]:
        """Ids of jobs (any, parts included) that start with ``prefix``, at most ``limit``."""
        query = select(JobRow.id).where(starts_with(JobRow.id, prefix)).order_by(JobRow.id).limit(limit)
        return list(self.session.scalars(query))

    def active(self, classifier_id: int | None = None, version_id: int | None = None) -> Sequence[JobRow]:
        """The jobs not yet ended that work on a classifier, or on one of its versions."""
        query = select(JobRow).where(
            JobRow.status.in_(
                [JobStatus.SUBMITTED.value, JobStatus.IN_PROGRESS.value, JobStatus.STOP_REQUESTED.value]
            )
        )
        if classifier_id is not None:
            query = query.where(JobRow.classifier_id == classifier_id)
        if version_id is not None:
            query = query.where(JobRow.version_id == version_id)
        return self.session.scalars(query.order_by(JobRow.created_at)).all()

    def for_version(self, version_id: int, kind: str) -> JobRow | None:
        """The newest job of ``kind`` working on a model version (e.g. the one training it)."""
        query = (
            select(JobRow)
            .where(JobRow.version_id == version_id, JobRow.kind == kind)
            .order_by(JobRow.created_at.desc(), JobRow.id.desc())
            .limit(1)
        )
        return self.session.scalar(query)

    def resubmit(self, row: JobRow) -> None:
        """Put a job back to SUBMITTED with its attempts starting over (a retry)."""
        row.status = JobStatus.SUBMITTED.value
        row.attempts = 0
        row.lease_owner = None
        row.lease_expires_at = None
        row.ended_at = None
        row.progress = 0.0
        row.progress_message = None
        self.session.flush()

    @staticmethod
    def _claimable(now: datetime) -> Any:
        expired = and_(JobRow.status.in_(_ACTIVE), JobRow.lease_expires_at < now)
        return or_(JobRow.status == JobStatus.SUBMITTED.value, expired)

    def claim(self, owner: str, lease_seconds: float, job_id: str | None = None) -> JobRow | None:
        """Take one claimable job (the oldest, or ``job_id``) for ``owner``; None if none is."""
        now = utcnow()
        query = select(JobRow.id).where(self._claimable(now)).order_by(JobRow.created_at).limit(8)
        if job_id is not None:
            query = query.where(JobRow.id == job_id)
        for (candidate,) in self.session.execute(query).all():
            claimed = self.session.execute(
                update(JobRow)
                .where(JobRow.id == candidate, self._claimable(now))
                .values(
                    # leaving SUBMITTED is what makes a concurrent claim's re-checked WHERE fail
                    status=case(
                        (JobRow.status == JobStatus.STOP_REQUESTED.value, JobStatus.STOP_REQUESTED.value),
                        else_=JobStatus.IN_PROGRESS.value,
                    ),
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=JobRow.attempts + 1,
                    started_at=func.coalesce(JobRow.started_at, now),
                )
                .execution_options(synchronize_session=False)
            )
            if rowcount(claimed) == 1:
                row = self.session.get(JobRow, candidate, populate_existing=True)
                assert row is not None
                return row
        return None

    def owned(self, job_id: str, owner: str, when_status: Sequence[str] | None = None, **values: Any) -> bool:
        """Update a job only while ``owner`` holds its lease (and, if given, it is in
        ``when_status``); False if it does not."""
        conditions = [JobRow.id == job_id, JobRow.lease_owner == owner]
        if when_status is not None:
            conditions.append(JobRow.status.in_(list(when_status)))
        result = self.session.execute(
            update(JobRow).where(*conditions).values(**values).execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    def renew(self, job_ids: Sequence[str], owner: str, lease_seconds: float) -> set[str]:
        """Extend the leases ``owner`` still holds; returns the ids it holds."""
        if not job_ids:
            return set()
        now = utcnow()
        self.session.execute(
            update(JobRow)
            .where(JobRow.id.in_(list(job_ids)), JobRow.lease_owner == owner, JobRow.status.in_(_ACTIVE))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
        held = select(JobRow.id).where(JobRow.id.in_(list(job_ids)), JobRow.lease_owner == owner)
        return set(self.session.scalars(held))

    def status(self, job_id: str) -> str | None:
        return self.session.scalar(select(JobRow.status).where(JobRow.id == job_id))


class WorkerRepository:
    """The processes that run jobs, as their heartbeats last announced them."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def beat(self, worker_id: str, **fields: Any) -> None:
        """Record that ``worker_id`` is alive now (its row is created if missing, e.g. on the
        first beat or after another process pruned it)."""
        now = utcnow()
        updated = self.session.execute(
            update(WorkerRow)
            .where(WorkerRow.id == worker_id)
            .values(last_seen=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(updated) == 0:
            self.session.add(WorkerRow(id=worker_id, started_at=now, last_seen=now, **fields))
            self.session.flush()

    def remove(self, worker_id: str) -> None:
        self.session.execute(
            delete(WorkerRow).where(WorkerRow.id == worker_id).execution_options(synchronize_session=False)
        )

    def prune(self, unseen_since: datetime) -> int:
        """Forget the workers not seen since ``unseen_since`` (processes that died); how many."""
        result = self.session.execute(
            delete(WorkerRow)
            .where(WorkerRow.last_seen < unseen_since)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)

    def list(
        self, seen_since: datetime | None = None, kinds: Sequence[str] | None = None
    ) -> Sequence[WorkerRow]:
        """Workers, most recently seen first; optionally only those seen since ``seen_since``
        or of the given ``kinds``."""
        query = select(WorkerRow).order_by(WorkerRow.last_seen.desc(), WorkerRow.id)
        if seen_since is not None:
            query = query.where(WorkerRow.last_seen >= seen_since)
        if kinds is not None:
            query = query.where(WorkerRow.kind.in_(list(kinds)))
        return self.session.scalars(query).all()


class EndpointRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, name: str) -> EndpointRow | None:
        return self.session.scalar(select(EndpointRow).where(EndpointRow.name == name))

    def get(self, name: str) -> EndpointRow:
        row = self.find(name)
        if row is None:
            raise NotFound(f"no endpoint named {name!r}")
        return row

    def list(self) -> Sequence[EndpointRow]:
        return self.session.scalars(select(EndpointRow).order_by(EndpointRow.name)).all()

    def add(self, **fields: Any) -> EndpointRow:
        row = EndpointRow(**fields)
        self.session.add(row)
        self.session.flush()
        return row


class ApiKeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **fields: Any) -> ApiKeyRow:
        row = ApiKeyRow(**fields)
        self.session.add(row)
        self.session.flush()
        return row

    def by_secret_hash(self, digest: str) -> ApiKeyRow | None:
        return self.session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_sha256 == digest))

    def by_access_key(self, access_key_id: str) -> ApiKeyRow | None:
        return self.session.scalar(select(ApiKeyRow).where(ApiKeyRow.access_key_id == access_key_id))

    def list(self) -> Sequence[ApiKeyRow]:
        return self.session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).all()

    def ids_starting(self, prefix: str, limit: int = PREFIX_MATCHES + 1) -> builtins.list[str]:
        """Access key ids that start with ``prefix``, at most ``limit``."""
        query = (
            select(ApiKeyRow.access_key_id)
            .where(starts_with(ApiKeyRow.access_key_id, prefix))
            .order_by(ApiKeyRow.access_key_id)
            .limit(limit)
        )
        return list(self.session.scalars(query))


class PredictionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows whose ``result`` is JSON text already, stored as is (no decode and encode
        again: the writer of a busy server inserts thousands a second)."""
        if not rows:
            return
        table = PredictionRow.__table__
        assert isinstance(table, Table)
        dialect = self.session.get_bind().dialect
        text = bindparam("result", type_=Text)
        if dialect.name == "postgresql":  # a text parameter cast to the column's JSONB
            as_json: Any = cast(text, table.c.result.type.dialect_impl(dialect))
        else:  # SQLite keeps JSON as text: store the text itself
            as_json = type_coerce(text, Text)
        self.session.execute(insert(table).values(result=as_json), list(rows))

    def get(self, prediction_id: str) -> PredictionRow:
        row = self.session.get(PredictionRow, prediction_id)
        if row is None:
            raise NotFound(f"no prediction {prediction_id!r}")
        return row
