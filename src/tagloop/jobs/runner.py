"""Runs claimed jobs and keeps their leases: the part every queue adapter shares.

A job is claimed with a lease that a heartbeat thread renews while it runs; if the
process dies, the lease runs out and another worker may claim the job again. Because a
claim is a conditional UPDATE, a job is never run by two workers at once; every later
write is conditional on still holding the lease, and a worker that lost its lease is
told to stop through ``should_stop``.

The same heartbeat thread writes the progress jobs report (at most every
``PROGRESS_INTERVAL``, the latest value at the latest that much after it was reported) and,
in a process that serves the queue (``tagloop serve``, ``tagloop worker``: see
:meth:`JobRunner.announce`), keeps the process's row in the ``workers`` table fresh, so that
whoever queues a job can tell whether anything will run it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from tagloop.domain.progress import Progress
from tagloop.domain.records import JobStatus
from tagloop.errors import NotFound, ResourceInUse, Stopped, TagloopError
from tagloop.jobs.port import AwaitChildren, JobContext, JobKind
from tagloop.storage.database import Database
from tagloop.storage.repositories import JobRepository, WorkerRepository
from tagloop.storage.tables import JobRow, utcnow

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5
"""Seconds between two progress writes of a job; a report in between is written by the heartbeat."""
STOP_CHECK_INTERVAL = 0.5
WORKER_BEAT_SECONDS = 5.0
"""How often a process that serves the queue refreshes its row in the ``workers`` table."""
WORKER_SEEN_SECONDS = 15.0
"""A worker not seen for this long is taken to be gone (three missed beats)."""
WORKER_FORGET_SECONDS = 86_400.0
"""The row of a worker not seen for this long (a process that died) is deleted."""


class JobRunner:
    def __init__(
        self,
        database: Database,
        lease_seconds: float = 30.0,
        on_requeue: Callable[[Session, str], None] | None = None,
    ) -> None:
        """``on_requeue(session, job_id)`` is called inside the transaction that puts a
        failed job back to SUBMITTED for another attempt (adapters schedule it there)."""
        self.database = database
        self.lease_seconds = lease_seconds
        self.on_requeue = on_requeue or (lambda session, job_id: None)
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.kinds: dict[str, JobKind] = {}
        self._running: set[str] = set()
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.executed = 0
        self._ended = threading.Condition()  # notified whenever a job run here ends
        # progress reported but not written yet, per job; writes hold _progress_lock, so the
        # last value reported is the last one written
        self._progress_pending: dict[str, tuple[float, str]] = {}
        self._progress_lock = threading.Lock()
        self._announced: dict[str, Any] | None = None  # this process's worker row, once announced

    def register(self, kind: JobKind) -> None:
        self.kinds[kind.kind] = kind

    def claim(self, job_id: str | None = None) -> JobRow | None:
        """Claim ``job_id`` (or the oldest claimable job) for this runner; None if not claimable."""
        self.start_heartbeat()
        with self.database.transaction() as session:
            return JobRepository(session).claim(self.owner, self.lease_seconds, job_id)

    def status(self, job_id: str) -> str:
        with self.database.reading() as session:
            status = JobRepository(session).status(job_id)
        if status is None:
            raise NotFound(f"no job {job_id!r}")
        return status

    def wait(self, job_id: str, timeout: float | None = None) -> str:
        """Block until the job reaches a final status (or ``timeout``); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005  # jobs ending in this process wake us at once; others are polled, backing off
        while True:
            status = self.status(job_id)
            if JobStatus(status).is_final or (deadline is not None and time.monotonic() > deadline):
                return status
            with self._ended:
                self._ended.wait(pause)
            pause = min(0.1, pause * 2)

    def start_heartbeat(self) -> None:
        with self._lock:
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._stopping.clear()
                self._heartbeat = threading.Thread(
                    target=self._beat, name="tagloop-job-heartbeat", daemon=True
                )
                self._heartbeat.start()

    def stop_heartbeat(self, wait: bool = True) -> None:
        self._stopping.set()
        if wait and self._heartbeat is not None:
            self._heartbeat.join(timeout=self.lease_seconds)
        self._heartbeat = None
        self._retract()

    def announce(self, kind: str, concurrency: int) -> None:
        """Say that this process serves the queue (runs ``concurrency`` jobs at once on the
        ``kind`` adapter): its ``workers`` row is written now, refreshed by the heartbeat every
        ``WORKER_BEAT_SECONDS`` and deleted by :meth:`stop_heartbeat`. Rows of workers not
        seen for a day (processes that died) are deleted meanwhile."""
        host, pid = socket.gethostname()[:255], os.getpid()
        self._announced = {"host": host, "pid": pid, "kind": kind, "concurrency": concurrency}
        with self.database.transaction() as session:
            workers = WorkerRepository(session)
            workers.prune(utcnow() - timedelta(seconds=WORKER_FORGET_SECONDS))
            workers.beat(self.owner, **self._announced)
        self.start_heartbeat()

    def _retract(self) -> None:
        announced, self._announced = self._announced, None
        if announced is None:
            return
        try:
            with self.database.transaction() as session:
                WorkerRepository(session).remove(self.owner)
        except Exception:  # the row then ages out: readers see it as not seen lately
            log.exception("removing this worker's row failed")

    def _beat(self) -> None:
        renew_every = max(0.05, self.lease_seconds / 3)
        tick = min(PROGRESS_INTERVAL, renew_every)
        next_renewal = time.monotonic() + renew_every
        next_announcement = time.monotonic() + WORKER_BEAT_SECONDS
        while not self._stopping.wait(tick):
            self._flush_progress()
            now = time.monotonic()
            announced = self._announced  # None once retracted (stop_heartbeat)
            if announced is not None and now >= next_announcement:
                next_announcement = now + WORKER_BEAT_SECONDS
                try:
                    with self.database.transaction() as session:
                        WorkerRepository(session).beat(self.owner, **announced)
                except Exception:
                    log.exception("announcing this worker failed")
            if now < next_renewal:
                continue
            next_renewal = now + renew_every
            with self._lock:
                running = list(self._running)
            if not running:
                continue
            try:
                with self.database.transaction() as session:
                    held = JobRepository(session).renew(running, self.owner, self.lease_seconds)
            except Exception:
                log.exception("renewing job leases failed")
                continue
            with self._lock:
                self._lost.update(set(running) - held)

    def _finish(self, job: JobRow, status: JobStatus, **values: Any) -> bool:
        """Record how a job ended (if this runner still holds it), and settle its parent."""
        with self.database.transaction() as session:
            jobs = JobRepository(session)
            if job.parent_id is not None:
                jobs.lock(job.parent_id)  # parent before child, the order request_stop locks in
            ended = jobs.owned(
                job.id, self.owner, status=status.value, ended_at=utcnow(), lease_expires_at=None, **values
            )
            kind = self.kinds.get(job.kind)
            if ended and kind is not None:
                kind.ended(session, job.id)
            if ended and job.parent_id is not None:
                self._settle_parent(session, job.parent_id)
        with self._ended:
            self._ended.notify_all()
        return ended

    def request_stop(self, job_id: str) -> None:
        """Stop a job and its children: those not started stop at once, running ones soon.

        The status changes are conditional UPDATEs, so a worker claiming a child at the same
        moment is never overwritten: the child is then asked to stop instead.
        """
        with self.database.transaction() as session:
            jobs = JobRepository(session)
            row = jobs.lock(job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            if JobStatus(row.status).is_final:
                raise ResourceInUse(f"job {job_id} already ended ({row.status})")
            kind, payload = self.kinds.get(row.kind), dict(row.payload)
            parent_stopped = jobs.stop_family(job_id)
            if not parent_stopped and kind is not None:
                kind.stop_requested(session, row)
            if jobs.has_children(job_id):
                self._settle_parent(session, job_id)
        if parent_stopped and kind is not None:
            kind.abandoned(payload, JobStatus.STOPPED.value, "stopped on request before it started")

    def retry(self, session: Session, job_id: str) -> None:
        """Put a FAILED or STOPPED job back to SUBMITTED (attempts start over) in ``session``;
        its kind hears of it in the same transaction, and it is scheduled once that commits."""
        jobs = JobRepository(session)
        row = jobs.lock(job_id)
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        if row.status not in (JobStatus.FAILED.value, JobStatus.STOPPED.value):
            raise ResourceInUse(f"job {job_id} is {row.status}; only FAILED or STOPPED jobs can be retried")
        jobs.resubmit(row)
        kind = self.kinds.get(row.kind)
        if kind is not None:
            kind.retried(session, row)
        self.on_requeue(session, job_id)

    def _spawner(self, parent: JobRow) -> Callable[[str, list[dict[str, Any]]], list[str]]:
        def spawn(kind: str, payloads: list[dict[str, Any]]) -> list[str]:
            if kind not in self.kinds:
                raise NotFound(f"unknown job kind {kind!r}")
            with self.database.transaction() as session:
                jobs = JobRepository(session)
                current = jobs.lock(parent.id)
                if current is None or current.status != JobStatus.IN_PROGRESS.value:
                    raise Stopped("stopped on request")
                if jobs.has_children(parent.id):
                    raise RuntimeError(f"job {parent.id} spawned its children already")
                ids = []
                for payload in payloads:
                    child = jobs.add(
                        kind,
                        payload,
                        parent_id=parent.id,
                        classifier_id=parent.classifier_id,
                        version_id=parent.version_id,
                    )
                    self.on_requeue(session, child.id)
                    ids.append(child.id)
                return ids

        return spawn

    def _await_children(self, job: JobRow) -> None:
        """Release a parent whose children run elsewhere; settle it if they all ended already."""
        with self.database.transaction() as session:
            JobRepository(session).owned(
                job.id,
                self.owner,
                when_status=(JobStatus.IN_PROGRESS.value,),
                lease_owner=None,
                lease_expires_at=None,
            )
            self._settle_parent(session, job.id)

    def _settle_parent(self, session: Session, parent_id: str) -> None:
        """Update a parent's progress; end it once every child has ended (parent row locked)."""
        jobs = JobRepository(session)
        parent = jobs.lock(parent_id)
        if parent is None or JobStatus(parent.status).is_final:
            return
        children = jobs.children(parent_id)
        ended = [child for child in children if JobStatus(child.status).is_final]
        parent.progress = round(len(ended) / max(1, len(children)), 4)
        parent.progress_message = f"{len(ended)} of {len(children)} parts done"
        if len(ended) < len(children):
            return
        kind = self.kinds.get(parent.kind)
        failed = [child for child in children if child.status == JobStatus.FAILED.value]
        stopped = [child for child in children if child.status == JobStatus.STOPPED.value]
        status, message, result = JobStatus.COMPLETED, None, None
        if failed:
            status = JobStatus.FAILED
            message = f"{len(failed)} of {len(children)} parts failed: {failed[0].error}"
        elif stopped or parent.status == JobStatus.STOP_REQUESTED.value:
            status, message = JobStatus.STOPPED, "stopped on request"
        elif kind is not None:
            try:
                result = kind.children_finished(dict(parent.payload), [child.result for child in children])
            except TagloopError as exc:
                status, message = JobStatus.FAILED, exc.message
        parent.status = status.value
        parent.ended_at = utcnow()
        parent.lease_owner = None
        parent.lease_expires_at = None
        parent.error = message
        if status is JobStatus.COMPLETED:
            parent.result = result
            parent.progress = 1.0
        elif kind is not None:
            kind.abandoned(dict(parent.payload), status.value, message or "")
        if kind is not None:
            session.flush()
            kind.ended(session, parent.id)

    def execute(self, job: JobRow, local_progress: Progress | None, reraise: bool = False) -> None:
        """Run a claimed job and record how it ended.

        ``reraise`` (a job run in the foreground, e.g. ``tagloop train``) hands errors to the
        caller and does not queue the job again after an unexpected error: the user saw the
        error and retries with ``tagloop jobs retry`` once its cause is fixed.
        """
        with self._lock:
            self.executed += 1
        kind = self.kinds.get(job.kind)
        if kind is None:
            self._finish(job, JobStatus.FAILED, error=f"unknown job kind {job.kind!r}")
            return
        if job.status == JobStatus.STOP_REQUESTED.value:
            if self._finish(job, JobStatus.STOPPED, error="stopped on request"):
                kind.abandoned(job.payload, JobStatus.STOPPED.value, "stopped on request")
            return
        if job.attempts > job.max_attempts:
            message = (
                f"gave up after {job.max_attempts} attempts: {job.error or 'the worker running it stopped'}"
            )
            if self._finish(job, JobStatus.FAILED, error=message):
                kind.abandoned(job.payload, JobStatus.FAILED.value, message)
            return
        with self.database.transaction() as session:
            started = JobRepository(session).owned(
                job.id,
                self.owner,
                when_status=(JobStatus.SUBMITTED.value, JobStatus.IN_PROGRESS.value),
                status=JobStatus.IN_PROGRESS.value,
            )
        if not started:  # a stop request arrived between the claim and now
            if self._finish(job, JobStatus.STOPPED, error="stopped on request"):
                kind.abandoned(job.payload, JobStatus.STOPPED.value, "stopped on request")
            return
        with self.database.reading() as session:
            spawned = JobRepository(session).has_children(job.id)
        if spawned:  # claimed again after its worker died: its children carry on
            self._await_children(job)
            return
        with self._lock:
            self._running.add(job.id)
            self._lost.discard(job.id)
        context = JobContext(
            job.id,
            job.kind,
            job.attempts,
            self._progress(job.id, local_progress),
            self._stop_check(job.id),
            self._spawner(job),
        )
        try:
            try:
                result = kind.run(context, dict(job.payload))
            finally:
                self._forget_progress(job.id)
        except Stopped as exc:
            self._finish(job, JobStatus.STOPPED, error=exc.message)
            if reraise:
                raise
        except TagloopError as exc:
            self._finish(job, JobStatus.FAILED, error=exc.message)
            if reraise:
                raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if not reraise:  # a caller running the job in the foreground reports it itself
                log.exception("job %s (%s) failed", job.id, job.kind)
            if job.attempts < job.max_attempts and not reraise:  # foreground runs: `jobs retry`
                with self.database.transaction() as session:
                    requeued = JobRepository(session).owned(
                        job.id,
                        self.owner,
                        status=JobStatus.SUBMITTED.value,
                        error=message,
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                    if requeued:
                        self.on_requeue(session, job.id)
            elif self._finish(job, JobStatus.FAILED, error=message):
                kind.abandoned(job.payload, JobStatus.FAILED.value, message)
            if reraise:
                raise
        else:
            if isinstance(result, AwaitChildren):
                self._await_children(job)
            else:
                self._finish(job, JobStatus.COMPLETED, result=result, progress=1.0, error=None)
        finally:
            with self._lock:
                self._running.discard(job.id)

    def _progress(self, job_id: str, local: Progress | None) -> Progress:
        """The progress callback of a running job: ``local`` (a foreground caller's bar) hears
        every report; the job's row gets one every ``PROGRESS_INTERVAL`` at most, and the
        latest report is written by the heartbeat if no later one comes sooner, so a job's
        progress is at most about a second old in the database while it runs."""
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            if local is not None:
                local(fraction, message)
            now = time.monotonic()
            with self._progress_lock:
                self._progress_pending[job_id] = (fraction, message)
                if now - last[0] < PROGRESS_INTERVAL and fraction < 1.0:
                    return  # the heartbeat writes it, unless a later report comes first
                last[0] = now
                self._write_progress(job_id, *self._progress_pending.pop(job_id))

        return report

    def _write_progress(self, job_id: str, fraction: float, message: str) -> None:
        """One progress write (``_progress_lock`` held); only while the job runs here."""
        running = (JobStatus.IN_PROGRESS.value, JobStatus.STOP_REQUESTED.value)
        with self.database.transaction() as session:
            JobRepository(session).owned(
                job_id,
                self.owner,
                when_status=running,
                progress=round(float(fraction), 4),
                progress_message=message,
            )

    def _flush_progress(self) -> None:
        """Write the progress reported since the last write of each job (the heartbeat's part)."""
        with self._progress_lock:
            pending, self._progress_pending = self._progress_pending, {}
            for job_id, (fraction, message) in pending.items():
                try:
                    self._write_progress(job_id, fraction, message)
                except Exception:  # progress is advisory: the next report tries again
                    log.exception("writing the progress of job %s failed", job_id)

    def _forget_progress(self, job_id: str) -> None:
        """Drop a job's unwritten progress: it has ended, and how it ended is what is written."""
        with self._progress_lock:
            self._progress_pending.pop(job_id, None)

    def _stop_check(self, job_id: str) -> Callable[[], bool]:
        state = {"checked": 0.0, "stop": False}

        def should_stop() -> bool:
            with self._lock:
                if job_id in self._lost:
                    return True
            now = time.monotonic()
            if not state["stop"] and now - state["checked"] >= STOP_CHECK_INTERVAL:
                state["checked"] = now
                with self.database.reading() as session:
                    status = JobRepository(session).status(job_id)
                state["stop"] = status != JobStatus.IN_PROGRESS.value
            return bool(state["stop"])

        return should_stop


class RunnerQueue:
    """What every queue adapter does the same way through its :class:`JobRunner`.

    Adapters set ``self.runner`` and implement ``requeue`` (how a SUBMITTED job gets
    scheduled), ``start``, ``shutdown``, ``serve_forever`` and ``run_until_idle``.
    """

    runner: JobRunner

    def requeue(self, session: Session, job_id: str) -> None:
        raise NotImplementedError

    def register(self, kind: JobKind) -> None:
        self.runner.register(kind)

    def enqueue(
        self, session: Session, kind: str, payload: dict[str, Any], max_attempts: int = 3, **links: Any
    ) -> str:
        if kind not in self.runner.kinds:
            raise NotFound(f"unknown job kind {kind!r}")
        row = JobRepository(session).add(kind, payload, max_attempts=max_attempts, **links)
        self.requeue(session, row.id)
        return row.id

    def run_now(self, job_id: str, progress: Progress | None = None) -> None:
        """Run the job here if it can be claimed (a worker finding it done later skips it)."""
        job = self.runner.claim(job_id)
        if job is not None:
            self.runner.execute(job, progress, reraise=True)
        else:
            self.runner.wait(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> str:
        return self.runner.wait(job_id, timeout)

    def request_stop(self, job_id: str) -> None:
        self.runner.request_stop(job_id)

    def retry(self, session: Session, job_id: str) -> None:
        self.runner.retry(session, job_id)
