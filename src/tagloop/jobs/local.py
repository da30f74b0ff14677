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

from sqlalchemy import event
from sqlalchemy.orm import Session

from tagloop.jobs.runner import JobRunner, RunnerQueue
from tagloop.storage.database import Database

log = logging.getLogger(__name__)


class LocalJobQueue(RunnerQueue):
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
        self.runner.announce(self.name, self.workers)  # a `workers` row, refreshed by the heartbeat
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
