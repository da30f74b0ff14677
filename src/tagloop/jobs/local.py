"""Local adapter: worker threads in this process, jobs durable in the metadata database.

Used by the embedded default (`tagloop serve`, `tagloop worker`, one-off CLI commands).
Workers wake at once for jobs enqueued in this process and poll for jobs enqueued by
others; a job whose process died is claimed again once its lease runs out (see
:mod:`tagloop.jobs.runner`).
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import suppress
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from tagloop.domain.models import Progress
from tagloop.errors import NotFound
from tagloop.jobs.port import JobKind
from tagloop.jobs.runner import JobRunner
from tagloop.storage.database import Database
from tagloop.storage.repositories import JobRepository

log = logging.getLogger(__name__)


class LocalJobQueue:
    name = "local"

    def __init__(
        self,
        database: Database,
        workers: int = 2,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.database = database
        self.workers = max(1, workers)
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.runner = JobRunner(database, lease_seconds, on_requeue=self.requeue)

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

    def requeue(self, session: Session, job_id: str) -> None:
        """Wake the workers once ``session`` commits a job back to SUBMITTED."""
        event.listen(session, "after_commit", lambda _session: self._wake.set(), once=True)

    def serve_forever(self) -> None:
        """Run worker threads until SIGINT/SIGTERM (``tagloop worker``)."""
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        self.start()
        with suppress(KeyboardInterrupt):
            done.wait()
        self.shutdown()

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        self.runner.start_heartbeat()
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"tagloop-job-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self, wait: bool = True) -> None:
        self._stopping.set()
        self._wake.set()
        if wait:
            for thread in self._threads:
                thread.join(timeout=self.runner.lease_seconds)
        self._threads.clear()
        self.runner.stop_heartbeat(wait)

    def run_now(self, job_id: str, progress: Progress | None = None) -> None:
        job = self.runner.claim(job_id)
        if job is not None:
            self.runner.execute(job, progress, reraise=True)
        else:
            self.runner.wait(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> str:
        return self.runner.wait(job_id, timeout)

    def request_stop(self, job_id: str) -> None:
        self.runner.request_stop(job_id)

    def run_until_idle(self) -> int:
        """Run claimable jobs in the calling thread until none is left; returns how many ran."""
        ran = 0
        while (job := self.runner.claim()) is not None:
            self.runner.execute(job, None)
            ran += 1
        return ran

    def _work(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                job = self.runner.claim()
            except Exception:  # database briefly unavailable: keep the worker alive
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.wait(self.poll_seconds)
                continue
            try:
                self.runner.execute(job, None)
            except Exception:  # recorded failures never get here; a lost database connection may
                log.exception("running job %s failed; its lease will expire and it will run again", job.id)
