"""The job port: what every queue adapter offers, and what a job kind implements.

A job row in the metadata database is the record users see (status, progress, error,
links); adapters decide who runs it and when. Enqueueing always happens inside the
caller's transaction, so a job exists exactly when the rows that describe it do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tagloop.domain.progress import Progress
from tagloop.storage.tables import JobRow


@dataclass(frozen=True)
class JobContext:
    """What a running job may ask of its runner.

    ``spawn(kind, payloads)`` enqueues child jobs (once per job, in one transaction); the
    job then returns :class:`AwaitChildren` and completes when they all have.
    """

    job_id: str
    kind: str
    attempt: int
    progress: Progress
    should_stop: Callable[[], bool]
    spawn: Callable[[str, list[dict[str, Any]]], list[str]]


@dataclass(frozen=True)
class AwaitChildren:
    """Returned by a job that spawned children: it ends when the last child ends."""

    children: int


class JobKind(Protocol):
    """One kind of job (e.g. ``train``): how to run it, and what happens to the records it works
    on (e.g. a training job's model version) when its job is stopped, retried or abandoned.

    The runner calls these hooks whatever the kind; :class:`JobKindBase` gives a kind the
    ones it has nothing to do in.
    """

    kind: str

    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any] | AwaitChildren | None:
        """Do the work; raise Stopped when ``context.should_stop()``; return a result, or
        :class:`AwaitChildren` once it spawned child jobs."""
        ...

    def stop_requested(self, session: Session, job: JobRow) -> None:
        """The job, claimed or running, was asked to stop (in the transaction that asks it)."""
        ...

    def retried(self, session: Session, job: JobRow) -> None:
        """The FAILED or STOPPED job was put back to SUBMITTED (in the transaction that does it)."""
        ...

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        """The job ended without completing (stopped, gave up, or a child job failed)."""
        ...

    def children_finished(
        self, payload: dict[str, Any], results: list[dict[str, Any] | None]
    ) -> dict[str, Any]:
        """All spawned children completed: finish the work (e.g. write a manifest); the result."""
        ...

    def ended(self, session: Session, job_id: str) -> None:
        """The job reached its final status (COMPLETED, FAILED or STOPPED), in the transaction
        that records it: e.g. an event telling of it (``services/notify_events.py``)."""
        ...


class JobKindBase:
    """A job kind's hooks for when nothing else changes with its job: stopping, retrying or
    abandoning it touches no other record, and it spawns no children."""

    kind: str

    def stop_requested(self, session: Session, job: JobRow) -> None:
        return None

    def retried(self, session: Session, job: JobRow) -> None:
        return None

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        return None

    def children_finished(
        self, payload: dict[str, Any], results: list[dict[str, Any] | None]
    ) -> dict[str, Any]:
        raise NotImplementedError(f"{self.kind} jobs have no children")

    def ended(self, session: Session, job_id: str) -> None:
        return None


class JobQueue(Protocol):
    name: str

    def register(self, kind: JobKind) -> None: ...

    def enqueue(
        self, session: Session, kind: str, payload: dict[str, Any], max_attempts: int = 3, **links: Any
    ) -> str:
        """Record a job in ``session``'s transaction; it runs once that commits."""
        ...

    def retry(self, session: Session, job_id: str) -> None:
        """Put a FAILED or STOPPED job back to SUBMITTED in ``session``, its attempts starting
        over (its kind's ``retried`` runs in that transaction); it runs once that commits."""
        ...

    def run_now(self, job_id: str, progress: Progress | None = None) -> None:
        """Run ``job_id`` in the calling thread if it can be claimed, else wait for it."""
        ...

    def wait(self, job_id: str, timeout: float | None = None) -> str:
        """Block until the job ends (or ``timeout``); returns its status."""
        ...

    def request_stop(self, job_id: str) -> None:
        """Stop a job and its children: at once if not started, within seconds if running
        (its kind's ``abandoned`` or ``stop_requested`` says what that does to its records)."""
        ...

    def run_until_idle(self) -> int:
        """Run the jobs that are due in the calling thread; returns how many ran."""
        ...

    def serve_forever(self) -> None:
        """Run jobs in the foreground until SIGINT/SIGTERM (``tagloop worker``)."""
        ...

    def start(self) -> None:
        """Start background workers in this process (no-op where workers run elsewhere)."""
        ...

    def shutdown(self, wait: bool = True) -> None: ...
