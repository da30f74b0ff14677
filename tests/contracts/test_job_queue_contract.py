"""Contract every job queue adapter must meet: local (SQLite, PostgreSQL), Procrastinate.

The jobs here are small test kinds registered on a real queue of a real Tagloop instance;
nothing is mocked. Two Tagloop instances on one database stand for two processes.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from tagloop.domain.records import JobStatus
from tagloop.errors import InvalidRequest, Stopped
from tagloop.jobs import runner
from tagloop.jobs.port import JobContext, JobKindBase
from tagloop.storage.repositories import JobRepository, WorkerRepository
from tagloop.storage.tables import WorkerRow, utcnow


class RecordingKind(JobKindBase):
    """A job kind whose behaviour the payload chooses; it records every execution."""

    kind = "test"

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.abandoned_calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.release = threading.Event()

    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            self.runs[context.job_id] += 1
            attempt_runs = self.runs[context.job_id]
        action = payload.get("action", "echo")
        if action == "fail":
            raise InvalidRequest("the input is wrong")
        if action == "crash":
            raise RuntimeError("boom")
        if action == "flaky" and attempt_runs == 1:
            raise RuntimeError("first attempt fails")
        if action == "slow":
            self.started.set()
            deadline = time.monotonic() + 20
            step = 0
            while time.monotonic() < deadline:
                step += 1
                context.progress(min(0.99, step / 100), f"step {step}")
                if context.should_stop():
                    raise Stopped("stopped on request")
                time.sleep(0.05)
        if action == "sleep":
            time.sleep(float(payload.get("seconds", 0.2)))
        if action == "report":  # reports twice at once, then waits until released
            context.progress(0.25, "a quarter")
            context.progress(0.5, "half way")
            self.started.set()
            assert self.release.wait(20)
        return {"echo": payload.get("value"), "attempt": context.attempt}

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        self.abandoned_calls.append((status, message))


@pytest.fixture
def queue_app(make_tagloop, job_backend):
    """A Tagloop on each queue adapter and database, with the test kind registered."""

    def build(**overrides):
        tagloop = make_tagloop(**job_backend, **overrides)
        kind = RecordingKind()
        tagloop.queue.register(kind)
        return tagloop, kind

    return build


def enqueue(tagloop, payload: dict[str, Any], max_attempts: int = 3) -> str:
    with tagloop.database.transaction() as session:
        return tagloop.queue.enqueue(session, "test", payload, max_attempts=max_attempts)


def wait_final(tagloop, job_id: str, timeout: float = 30) -> dict[str, Any]:
    tagloop.queue.wait(job_id, timeout=timeout)
    return tagloop.jobs.show(job_id)


def wait_for(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_enqueue_run_complete(queue_app):
    tagloop, kind = queue_app()
    job_id = enqueue(tagloop, {"value": 42})
    assert tagloop.jobs.show(job_id)["status"] == JobStatus.SUBMITTED
    tagloop.start_workers()
    job = wait_final(tagloop, job_id)
    assert job["status"] == JobStatus.COMPLETED
    assert job["result"] == {"echo": 42, "attempt": 1}
    assert job["progress"] == 1.0
    assert job["attempts"] == 1
    assert job["started_at"] and job["ended_at"] and job["ended_at"] >= job["started_at"]
    assert kind.runs[job_id] == 1


def test_enqueue_is_part_of_the_callers_transaction(queue_app):
    tagloop, _ = queue_app()
    with pytest.raises(RuntimeError), tagloop.database.transaction() as session:
        tagloop.queue.enqueue(session, "test", {"value": 1})
        raise RuntimeError("the transaction fails after enqueueing")
    assert tagloop.jobs.list() == []
    assert tagloop.queue.run_until_idle() == 0


def test_failure_is_recorded_with_its_message_and_not_retried(queue_app):
    tagloop, kind = queue_app()
    job_id = enqueue(tagloop, {"action": "fail"})
    tagloop.queue.run_until_idle()
    job = tagloop.jobs.show(job_id)
    assert job["status"] == JobStatus.FAILED
    assert job["error"] == "the input is wrong"
    assert kind.runs[job_id] == 1


def test_unexpected_errors_are_retried_then_fail(queue_app):
    tagloop, kind = queue_app()
    flaky = enqueue(tagloop, {"action": "flaky", "value": "ok"})
    broken = enqueue(tagloop, {"action": "crash"}, max_attempts=2)
    tagloop.queue.run_until_idle()
    assert tagloop.jobs.show(flaky)["status"] == JobStatus.COMPLETED
    assert tagloop.jobs.show(flaky)["result"]["attempt"] == 2
    job = tagloop.jobs.show(broken)
    assert job["status"] == JobStatus.FAILED
    assert "boom" in job["error"]
    assert kind.runs[broken] == 2
    assert kind.abandoned_calls == [(JobStatus.FAILED.value, "RuntimeError: boom")]


def test_retry_queues_a_failed_job_again(queue_app):
    tagloop, kind = queue_app()
    job_id = enqueue(tagloop, {"action": "fail"})
    tagloop.queue.run_until_idle()
    assert tagloop.jobs.retry(job_id)["status"] == JobStatus.SUBMITTED
    tagloop.queue.run_until_idle()
    assert kind.runs[job_id] == 2


def test_stop_before_start_never_runs(queue_app):
    tagloop, kind = queue_app()
    job_id = enqueue(tagloop, {"value": 1})
    assert tagloop.jobs.stop(job_id)["status"] == JobStatus.STOPPED
    assert tagloop.queue.run_until_idle() == 0
    assert kind.runs[job_id] == 0


def test_stop_a_running_job_within_seconds_and_progress_is_visible(queue_app):
    tagloop, kind = queue_app()
    job_id = enqueue(tagloop, {"action": "slow"})
    tagloop.start_workers()
    assert kind.started.wait(20)
    wait_for(lambda: tagloop.jobs.show(job_id)["progress"] > 0)
    running = tagloop.jobs.show(job_id)
    assert running["status"] == JobStatus.IN_PROGRESS
    assert running["progress_message"].startswith("step")
    asked = time.monotonic()
    assert tagloop.jobs.stop(job_id)["status"] == JobStatus.STOP_REQUESTED
    job = wait_final(tagloop, job_id)
    assert job["status"] == JobStatus.STOPPED
    assert time.monotonic() - asked < 5


def test_a_job_whose_worker_died_is_run_again_by_another(queue_app):
    dead, _ = queue_app(job_lease_seconds=0.5)
    job_id = enqueue(dead, {"value": "again"})
    with dead.database.transaction() as session:  # a worker claims it and then dies silently
        assert JobRepository(session).claim("dead-worker", lease_seconds=0.5).id == job_id
    alive, kind = queue_app(job_lease_seconds=0.5)
    assert alive.queue.run_until_idle() == 0  # the lease still holds
    wait_for(lambda: alive.queue.run_until_idle() == 1)
    job = alive.jobs.show(job_id)
    assert job["status"] == JobStatus.COMPLETED
    assert job["attempts"] == 2
    assert kind.runs[job_id] == 1


def test_two_processes_never_run_a_job_twice(queue_app):
    first, first_kind = queue_app(job_workers=2)
    second, second_kind = queue_app(job_workers=2)
    ids = [enqueue(first, {"action": "sleep", "seconds": 0.01, "value": n}) for n in range(30)]
    first.start_workers()
    second.start_workers()
    for job_id in ids:
        assert wait_final(first, job_id)["status"] == JobStatus.COMPLETED
    runs = first_kind.runs + second_kind.runs
    assert all(runs[job_id] == 1 for job_id in ids), runs


def test_unknown_kind_is_refused_at_enqueue(queue_app):
    tagloop, _ = queue_app()
    with pytest.raises(Exception, match="unknown job kind"), tagloop.database.transaction() as session:
        tagloop.queue.enqueue(session, "no-such-kind", {})


def test_the_last_progress_reported_reaches_the_job_row_while_it_runs(queue_app):
    """Reports closer together than the runner writes them are not lost: the heartbeat writes
    the latest one while the job still runs."""
    tagloop, kind = queue_app()
    job_id = enqueue(tagloop, {"action": "report"})
    tagloop.start_workers()
    assert kind.started.wait(20)
    try:
        wait_for(lambda: tagloop.jobs.show(job_id)["progress"] == 0.5)
        assert tagloop.jobs.show(job_id)["progress_message"] == "half way"
    finally:
        kind.release.set()
    job = wait_final(tagloop, job_id)
    assert (job["status"], job["progress"]) == (JobStatus.COMPLETED, 1.0)


def test_workers_announce_themselves_while_they_serve_the_queue(queue_app, monkeypatch):
    monkeypatch.setattr(runner, "WORKER_BEAT_SECONDS", 0.1)
    tagloop, _ = queue_app(job_workers=3)
    observer, _ = queue_app()  # another process on the same database, running no jobs
    assert tagloop.jobs.workers() == []
    reason = observer.jobs.unattended()
    assert reason is not None and "no worker has been seen in the last 15 s" in reason
    assert "`tagloop worker`" in reason

    tagloop.start_workers()
    [worker] = observer.jobs.workers()
    assert (worker["kind"], worker["pid"], worker["concurrency"]) == (tagloop.queue.name, os.getpid(), 3)
    assert worker["host"] == socket.gethostname()
    assert worker["alive"] is True
    assert observer.jobs.unattended() is None
    first_seen = worker["last_seen"]
    wait_for(lambda: observer.jobs.workers()[0]["last_seen"] > first_seen)  # its heartbeat refreshes it

    tagloop.queue.shutdown()  # a clean shutdown takes its row away
    assert observer.jobs.workers() == []
    assert observer.jobs.unattended() is not None


def test_a_worker_not_seen_lately_does_not_count(queue_app):
    tagloop, _ = queue_app()
    with tagloop.database.transaction() as session:  # a worker whose process died a minute ago
        WorkerRepository(session).beat("gone:1:x", host="gone", pid=1, kind=tagloop.queue.name, concurrency=2)
        session.query(WorkerRow).update({"last_seen": utcnow() - timedelta(minutes=1)})
    [worker] = tagloop.jobs.workers()
    assert worker["id"] == "gone:1:x"
    assert worker["alive"] is False and worker["seconds_since_seen"] >= 60
    assert tagloop.jobs.unattended() is not None
    with tagloop.database.transaction() as session:  # not seen for over a day: forgotten when a worker starts
        session.query(WorkerRow).update({"last_seen": utcnow() - timedelta(days=2)})
    tagloop.start_workers()
    assert [worker["id"] for worker in tagloop.jobs.workers()] == [tagloop.queue.runner.owner]
    assert wait_final(tagloop, enqueue(tagloop, {"value": 1}))["status"] == JobStatus.COMPLETED
