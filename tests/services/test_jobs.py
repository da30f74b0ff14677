"""The job records users act on: waiting for a job, and listing jobs a page at a time in SQL.

Real queues on real databases (SQLite and PostgreSQL); the job kinds are small test kinds.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import pytest

from tagloop.domain.records import JobStatus
from tagloop.errors import InvalidRequest, NotFound, Stopped
from tagloop.jobs.port import JobContext, JobKindBase
from tagloop.storage.repositories import JobRepository


class Steps(JobKindBase):
    """A job kind whose behaviour the payload chooses."""

    def __init__(self, kind: str = "steps") -> None:
        self.kind = kind
        self.started = threading.Event()
        self.progress_seen = threading.Event()

    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        action = payload.get("action", "done")
        if action == "fail":
            raise InvalidRequest("the input is wrong")
        if action == "report":  # reports halfway, then ends once the waiter has heard it
            context.progress(0.5, "halfway")
            return {"heard": self.progress_seen.wait(30)}
        if action == "until-stopped":
            self.started.set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if context.should_stop():
                    raise Stopped("stopped on request")
                time.sleep(0.02)
        return {"heard": False}


@pytest.fixture
def desk(make_tagloop, database_url):
    """A Tagloop on each database, with the test kinds registered; (tagloop, kind)."""
    tagloop = make_tagloop(database_url=database_url)
    kind = Steps()
    tagloop.queue.register(kind)
    tagloop.queue.register(Steps("other"))
    return tagloop, kind


def enqueue(tagloop, payload: dict[str, Any], kind: str = "steps") -> str:
    with tagloop.database.transaction() as session:
        return tagloop.queue.enqueue(session, kind, payload)


# ---- wait -----------------------------------------------------------------------------------


def test_wait_returns_a_completed_job_and_reports_its_progress_meanwhile(desk):
    tagloop, kind = desk
    job_id = enqueue(tagloop, {"action": "report"})
    heard: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        heard.append((fraction, message))
        if message == "halfway":
            kind.progress_seen.set()

    tagloop.start_workers()
    job = tagloop.jobs.wait(job_id, timeout=60, poll=0.05, progress=progress)
    assert job["status"] == JobStatus.COMPLETED
    assert job["result"] == {"heard": True}  # the job ended only after the waiter heard "halfway"
    assert (0.5, "halfway") in heard
    assert heard[-1][0] == 1.0
    assert job == tagloop.jobs.show(job_id)


def test_wait_returns_a_failed_job_with_its_error(desk):
    tagloop, _ = desk
    job_id = enqueue(tagloop, {"action": "fail"})
    tagloop.start_workers()
    job = tagloop.jobs.wait(job_id, timeout=60)
    assert job["status"] == JobStatus.FAILED
    assert job["error"] == "the input is wrong"


def test_wait_returns_a_job_stopped_while_it_waits(desk):
    tagloop, kind = desk
    job_id = enqueue(tagloop, {"action": "until-stopped"})
    tagloop.start_workers()

    def stop_once_started() -> None:
        if kind.started.wait(30):
            tagloop.jobs.stop(job_id)

    stopper = threading.Thread(target=stop_once_started)
    stopper.start()
    job = tagloop.jobs.wait(job_id, timeout=60)
    stopper.join()
    assert job["status"] == JobStatus.STOPPED
    assert job["error"] == "stopped on request"


def test_wait_gives_up_after_its_timeout_with_the_job_as_it_stands(desk):
    tagloop, _ = desk
    job_id = enqueue(tagloop, {})  # no worker runs in this process
    heard: list[tuple[float, str]] = []
    job = tagloop.jobs.wait(job_id, timeout=0.3, poll=0.1, progress=lambda f, m: heard.append((f, m)))
    assert job["status"] == JobStatus.SUBMITTED
    assert heard and set(heard) == {(0.0, "submitted")}
    with pytest.raises(NotFound):
        tagloop.jobs.wait("no-such-job", timeout=1)


# ---- pages in SQL ---------------------------------------------------------------------------


def old_style(tagloop, kind: str, status: str | None = None, name: str | None = None) -> list[str]:
    """What listing answered before it paged in SQL: everything loaded, then filtered."""
    jobs = tagloop.jobs.list(limit=10_000, status=status)
    jobs.sort(key=lambda job: (job["created_at"], job["id"]), reverse=True)
    return [job["id"] for job in jobs if job["kind"] == kind and name in (None, job["payload"].get("name"))]


def all_pages(tagloop, kind: str, size: int, **filters: Any) -> tuple[list[str], int]:
    """Follow the page tokens to the end; the ids in order, and how many pages it took."""
    ids: list[str] = []
    token = None
    pages = 0
    while True:
        page, token = tagloop.jobs.page(kind, limit=size, after=token, **filters)
        pages += 1
        assert len(page) <= size
        ids += [job["id"] for job in page]
        if token is None:
            return ids, pages


def test_pages_follow_the_filters_and_give_the_same_answers_as_listing_everything(desk):
    tagloop, _ = desk
    for number in range(7):
        enqueue(tagloop, {"name": "nightly" if number % 2 else "weekly"})
        enqueue(tagloop, {"name": "nightly"}, kind="other")  # another kind: never listed
    stopped = [enqueue(tagloop, {"name": "nightly"}) for _ in range(3)]
    for job_id in stopped:
        tagloop.jobs.stop(job_id)
    with tagloop.database.transaction() as session:  # a child job: listed with its parent only
        JobRepository(session).add("steps", {"name": "nightly"}, parent_id=stopped[0])
    assert len(old_style(tagloop, "steps")) == 10
    for filters in (
        {},
        {"name": "nightly"},
        {"name": "weekly"},
        {"status": "STOPPED"},
        {"status": "SUBMITTED", "name": "nightly"},
        {"name": "monthly"},
    ):
        expected = old_style(tagloop, "steps", **filters)
        for size in (1, 3, 100):
            ids, pages = all_pages(tagloop, "steps", size, **filters)
            assert ids == expected, (filters, size)
            assert pages == max(1, -(-len(expected) // size))  # no empty last page
    assert all_pages(tagloop, "steps", 3, status="STOPPED")[0] == stopped[::-1]


def test_a_page_token_is_opaque_and_later_jobs_never_shift_the_pages(desk):
    tagloop, _ = desk
    ids = [enqueue(tagloop, {"name": "nightly"}) for _ in range(5)]
    first, token = tagloop.jobs.page("steps", limit=2)
    assert [job["id"] for job in first] == ids[:-3:-1]
    assert token is not None and base64.urlsafe_b64decode(token)  # opaque, URL-safe
    newer = enqueue(tagloop, {"name": "nightly"})  # submitted between two pages
    second, token = tagloop.jobs.page("steps", limit=2, after=token)
    third, last = tagloop.jobs.page("steps", limit=2, after=token)
    assert [job["id"] for job in second + third] == ids[2::-1]
    assert last is None
    assert tagloop.jobs.page("steps", limit=2)[0][0]["id"] == newer
    for bad in ("not a token", base64.urlsafe_b64encode(b"[1, 2, 3]").decode()):
        with pytest.raises(InvalidRequest, match="page token"):
            tagloop.jobs.page("steps", after=bad)
