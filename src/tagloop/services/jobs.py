"""Job records users can see and act on: list, page, show, stop, retry, wait; and the
workers that run them.

What a job's stop or retry does to the records it works on (a training job's model version)
is its kind's business (:class:`~tagloop.jobs.port.JobKind` hooks, called by the queue).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tagloop.domain.progress import Progress
from tagloop.domain.records import JobStatus
from tagloop.errors import InvalidRequest
from tagloop.jobs.port import JobQueue
from tagloop.jobs.runner import WORKER_SEEN_SECONDS
from tagloop.storage.database import Database
from tagloop.storage.repositories import JobRepository, WorkerRepository, one_match
from tagloop.storage.tables import ClassifierRow, JobRow, ModelVersionRow, WorkerRow, utcnow

RUNS_JOBS_OF = {"local": ("local",), "procrastinate": ("procrastinate", "local")}
"""The kinds of worker that run the jobs a queue adapter enqueues: a local worker claims any
queued job row; a Procrastinate worker only those deferred to Procrastinate."""


def job_summary(row: JobRow, classifier: str | None = None, version: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "progress": row.progress,
        "progress_message": row.progress_message,
        "error": row.error,
        "attempts": row.attempts,
        "classifier": classifier,
        "version": version,
        "result": row.result,
        "payload": row.payload,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }


def _page_token(row: JobRow) -> str:
    """An opaque token for the page after ``row``: its place in the newest-first order."""
    return base64.urlsafe_b64encode(json.dumps([row.created_at.isoformat(), row.id]).encode()).decode()


def _after(token: str) -> tuple[datetime, str]:
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(created_at), str(job_id)
    except (binascii.Error, UnicodeError, ValueError, TypeError) as exc:
        raise InvalidRequest("the page token is not one this service gave") from exc


def worker_summary(row: WorkerRow, now: datetime) -> dict[str, Any]:
    seen = (now - row.last_seen).total_seconds()
    return {
        "id": row.id,
        "host": row.host,
        "pid": row.pid,
        "kind": row.kind,
        "concurrency": row.concurrency,
        "started_at": row.started_at.isoformat(),
        "last_seen": row.last_seen.isoformat(),
        "seconds_since_seen": round(max(0.0, seen), 1),
        "alive": seen <= WORKER_SEEN_SECONDS,
    }


class JobService:
    def __init__(self, database: Database, queue: JobQueue) -> None:
        self.database = database
        self.queue = queue

    def _summary(self, session: Session, row: JobRow) -> dict[str, Any]:
        return self._summaries(session, [row])[0]

    @staticmethod
    def _summaries(session: Session, rows: Sequence[JobRow]) -> list[dict[str, Any]]:
        """Summaries of ``rows`` with their classifier and version names (two queries in all)."""

        def names(table: type[ClassifierRow] | type[ModelVersionRow], ids: set[int | None]) -> dict[int, str]:
            ids.discard(None)
            if not ids:
                return {}
            query = select(table.id, table.name).where(table.id.in_(ids))
            return {id_: name for id_, name in session.execute(query)}

        classifiers = names(ClassifierRow, {row.classifier_id for row in rows})
        versions = names(ModelVersionRow, {row.version_id for row in rows})
        return [
            job_summary(
                row,
                classifiers.get(row.classifier_id) if row.classifier_id is not None else None,
                versions.get(row.version_id) if row.version_id is not None else None,
            )
            for row in rows
        ]

    def list(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            return self._summaries(session, JobRepository(session).list(limit, status))

    def page(
        self,
        kind: str,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[builtins.list[dict[str, Any]], str | None]:
        """One page of the top-level jobs of ``kind``, newest first, optionally of one status or
        one payload ``name``; and the token of the next page (None on the last one).

        Pages are read in SQL, keyed on the last job listed: jobs submitted meanwhile never
        shift a page, and a page costs the same however deep it is.
        """
        before = _after(after) if after else None
        with self.database.reading() as session:
            rows = JobRepository(session).list(limit + 1, status, kind=kind, name=name, before=before)
            more = len(rows) > limit
            rows = rows[:limit]
            return self._summaries(session, rows), _page_token(rows[-1]) if more else None

    def resolve(self, prefix: str) -> str:
        """The id of the job whose id is ``prefix`` or, failing that, the one that starts with it
        (what a user copies from a listing); several matches are refused, naming them."""
        with self.database.reading() as session:
            if session.get(JobRow, prefix) is not None:
                return prefix
            return one_match("job", prefix, JobRepository(session).ids_starting(prefix))

    def show(self, job_id: str) -> dict[str, Any]:
        with self.database.reading() as session:
            return self._summary(session, JobRepository(session).get(job_id))

    def stop(self, job_id: str) -> dict[str, Any]:
        """Ask a job to stop: one not started stops at once, a running one within seconds."""
        self.queue.request_stop(job_id)
        return self.show(job_id)

    def retry(self, job_id: str) -> dict[str, Any]:
        """Queue a FAILED or STOPPED job again (its attempts start over)."""
        with self.database.transaction() as session:
            self.queue.retry(session, job_id)
            return self._summary(session, JobRepository(session).get(job_id))

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        poll: float = 0.2,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """The job's summary once it has ended (COMPLETED, FAILED or STOPPED), or as it stands
        when ``timeout`` seconds have passed (its status then says it has not ended).

        ``progress`` hears the job's progress every ``poll`` seconds meanwhile, and once more at
        the end. Something must run the job: workers of this process (``start_workers``) or a
        ``tagloop worker``; a job ending in this process wakes the wait at once.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.show(job_id)
            if progress is not None:
                progress(job["progress"], job["progress_message"] or job["status"].lower())
            left = None if deadline is None else deadline - time.monotonic()
            if JobStatus(job["status"]).is_final or (left is not None and left <= 0):
                return job
            self.queue.wait(job_id, poll if left is None else min(poll, left))

    def workers(self) -> builtins.list[dict[str, Any]]:
        """The processes that run jobs (``tagloop serve``, ``tagloop worker``), most recently
        seen first; ``alive``: seen in the last ``WORKER_SEEN_SECONDS``."""
        now = utcnow()
        with self.database.reading() as session:
            return [worker_summary(row, now) for row in WorkerRepository(session).list()]

    def unattended(self) -> str | None:
        """Why a job queued now would wait: no worker that runs this queue's jobs was seen lately
        (a message saying how to start one); None when one was."""
        kinds = RUNS_JOBS_OF.get(self.queue.name, (self.queue.name,))
        since = utcnow() - timedelta(seconds=WORKER_SEEN_SECONDS)
        with self.database.reading() as session:
            if WorkerRepository(session).list(seen_since=since, kinds=kinds):
                return None
        return (
            f"no worker has been seen in the last {WORKER_SEEN_SECONDS:.0f} s: "
            "start `tagloop worker` (or `tagloop serve`) to run it"
        )
