"""Procrastinate adapter: jobs run by `tagloop worker` processes on any number of machines.

tagloop's own job row stays the record users see; a Procrastinate job (task
``tagloop.run_job``, queue ``tagloop``) carries its id. Both are written in the caller's
transaction: the Procrastinate row through its ``procrastinate_defer_jobs_v1`` SQL
function on the same connection, so a job exists exactly when the rows describing it do,
and workers hear of it (LISTEN/NOTIFY) only when that transaction commits.

A worker runs the job through the shared :class:`~tagloop.jobs.runner.JobRunner` (leases,
heartbeat, stop requests). When a worker dies, Procrastinate's stalled-job sweep (run by
every worker) retries its job and the next worker claims the tagloop row once the dead
worker's lease has run out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import procrastinate
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tagloop.domain.records import JobStatus
from tagloop.errors import ConfigurationError, NotFound, ResourceInUse
from tagloop.jobs.runner import JobRunner, RunnerQueue
from tagloop.storage.database import Database

log = logging.getLogger(__name__)

QUEUE = "tagloop"
TASK = "tagloop.run_job"
_DEFER = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, NULL, NULL, CAST(:args AS jsonb), NULL)"
    "::procrastinate_job_to_defer_v1])"
)


class LeaseHeld(ResourceInUse):
    """Another worker still holds the job's lease; Procrastinate retries the task later."""


def conninfo(database: Database) -> str:
    if database.dialect != "postgresql":
        raise ConfigurationError("TAGLOOP_JOBS=procrastinate needs TAGLOOP_DATABASE_URL on PostgreSQL")
    url = make_url(database.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ProcrastinateJobQueue(RunnerQueue):
    name = "procrastinate"

    def __init__(self, database: Database, workers: int = 2, lease_seconds: float = 30.0) -> None:
        self.database = database
        self.workers = max(1, workers)
        self.lease_seconds = lease_seconds
        self.runner = JobRunner(database, lease_seconds, on_requeue=self.requeue)
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(database)))
        retry = procrastinate.RetryStrategy(
            max_attempts=1000, wait=max(1, int(lease_seconds / 2)), retry_exceptions={LeaseHeld}
        )
        self.app.task(name=TASK, queue=QUEUE, retry=retry)(self._run_job)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # ---- schema ----------------------------------------------------------------------
    def ensure_schema(self) -> bool:
        """Install Procrastinate's tables if missing; True if it did."""
        with self.database.engine.connect() as connection:
            exists = connection.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar()
        if exists:
            return False
        with self.app.open():
            self.app.schema_manager.apply_schema()
        return True

    # ---- port ------------------------------------------------------------------------
    def requeue(self, session: Session, job_id: str) -> None:
        """Defer a Procrastinate task for ``job_id`` in ``session``'s transaction."""
        session.execute(_DEFER, {"queue": QUEUE, "task": TASK, "args": json.dumps({"job_id": job_id})})

    def start(self) -> None:
        """Run a Procrastinate worker in a background thread of this process."""
        if self._thread is not None:
            return
        self.runner.announce(self.name, self.workers)  # a `workers` row, refreshed by the heartbeat
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._task = loop.create_task(self._work(wait=True))
            started.set()
            try:
                loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="tagloop-procrastinate", daemon=True)
        self._thread.start()
        started.wait()

    def serve_forever(self) -> None:
        """Run a worker in the foreground until SIGINT/SIGTERM (``tagloop worker``)."""
        self.runner.announce(self.name, self.workers)
        try:
            asyncio.run(self._work(wait=True, signals=True))
        finally:
            self.runner.stop_heartbeat()

    def run_until_idle(self) -> int:
        """Retry stalled jobs, run every job that is due, then return how many tagloop jobs ran."""
        before = self.runner.executed
        asyncio.run(self._work(wait=False))
        return self.runner.executed - before

    def shutdown(self, wait: bool = True) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        if wait and self._thread is not None:
            self._thread.join(timeout=self.lease_seconds)
        self._thread = self._loop = self._task = None
        self.runner.stop_heartbeat(wait)

    # ---- worker ----------------------------------------------------------------------
    async def _work(self, wait: bool, signals: bool = False) -> None:
        heartbeat = max(0.5, self.lease_seconds / 3)
        async with self.app.open_async():
            await self._retry_stalled()
            sweeper = asyncio.create_task(self._sweep()) if wait else None
            try:
                await self.app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=self.workers,
                    wait=wait,
                    install_signal_handlers=signals,
                    update_heartbeat_interval=heartbeat,
                    stalled_worker_timeout=self.lease_seconds,
                    fetch_job_polling_interval=1.0,
                )
            finally:
                if sweeper is not None:
                    sweeper.cancel()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.lease_seconds / 2))
            try:
                await self._retry_stalled()
            except Exception:
                log.exception("retrying stalled jobs failed")

    async def _retry_stalled(self) -> None:
        manager = self.app.job_manager
        for job in await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=self.lease_seconds):
            log.warning("retrying job %s: its worker stopped sending heartbeats", job.id)
            await manager.retry_job(job)

    def _run_job(self, job_id: str) -> None:
        try:
            status = self.runner.status(job_id)
        except NotFound:
            log.warning("Procrastinate job for unknown tagloop job %s dropped", job_id)
            return
        if JobStatus(status).is_final:
            return
        job = self.runner.claim(job_id)
        if job is None:
            raise LeaseHeld(f"job {job_id} is held by another worker")
        self.runner.execute(job, None)
