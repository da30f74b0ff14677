"""``/console/jobs``: the newest jobs with live progress (the rows fragment is polled by htmx
every second while one of them is not finished), and one job's page; stop and retry buttons
(admins: job payloads name files and their errors the server's paths).

Stop and retry are plain forms answered with a redirect, so they work without script too;
the queue does the rest (``JobService.stop``: a job not started stops at once, a running one
within seconds; ``retry``: a FAILED or STOPPED job queued again).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tagloop.domain.records import JobStatus
from tagloop.errors import InvalidRequest
from tagloop.web.console.common import AdminSession, see_other
from tagloop.web.render import page
from tagloop.web.security import tagloop_of

router = APIRouter(include_in_schema=False)
LISTED = 100
STATUSES = tuple(status.value for status in JobStatus)
NOTICES = {
    "stop": "Stop requested: a job not started stops at once, a running one within seconds.",
    "retry": "Queued again: a worker picks it up.",
    "uploaded": "File imported: its training job is queued. This page follows its progress.",
}


def _job_id(value: str) -> str:
    if not 1 <= len(value) <= 64 or not value.replace("-", "").isalnum():
        raise InvalidRequest("not a job id")
    return value


def live(jobs: list[dict[str, Any]]) -> bool:
    """Whether a page showing ``jobs`` should keep polling (one of them may still move)."""
    return any(not JobStatus(job["status"]).is_final for job in jobs)


async def _jobs(request: Request, status: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await run_in_threadpool(
        tagloop_of(request).jobs.list, LISTED, status if status in STATUSES else None
    )
    return found


@router.get("/console/jobs")
async def jobs_page(request: Request, session: AdminSession, status: str = "", done: str = "") -> Response:
    jobs = await _jobs(request, status)
    unattended = await run_in_threadpool(tagloop_of(request).jobs.unattended) if live(jobs) else None
    return await page(
        request,
        "console/jobs.html",
        "Jobs",
        session=session,
        active="jobs",
        jobs=jobs,
        shown_status=status if status in STATUSES else "",
        statuses=STATUSES,
        live=live(jobs),
        unattended=unattended,
        notice=NOTICES.get(done),
    )


@router.get("/console/jobs/rows")
async def jobs_rows(request: Request, session: AdminSession, status: str = "") -> Response:
    """The rows of the jobs table (htmx polls it); it stops polling once every job is final."""
    jobs = await _jobs(request, status)
    return await page(
        request,
        "console/_job_rows.html",
        "Jobs",
        session=session,
        jobs=jobs,
        shown_status=status if status in STATUSES else "",
        live=live(jobs),
    )


@router.get("/console/jobs/{job_id}")
async def job_page(request: Request, job_id: str, session: AdminSession, done: str = "") -> Response:
    job = await run_in_threadpool(tagloop_of(request).jobs.show, _job_id(job_id))
    return await page(
        request,
        "console/job.html",
        f"Job {job_id[:8]}",
        session=session,
        active="jobs",
        job=job,
        notice=NOTICES.get(done),
    )


@router.get("/console/jobs/{job_id}/progress")
async def job_progress(request: Request, job_id: str, session: AdminSession) -> Response:
    job = await run_in_threadpool(tagloop_of(request).jobs.show, _job_id(job_id))
    return await page(request, "console/_job.html", "Job", session=session, job=job)


def _back(form_value: Any, job_id: str, done: str) -> str:
    """Back to the page the button was on: the job's, or the list."""
    return f"/console/jobs?done={done}" if form_value == "list" else f"/console/jobs/{job_id}?done={done}"


@router.post("/console/jobs/{job_id}/stop")
async def stop(request: Request, job_id: str, session: AdminSession) -> Response:
    await run_in_threadpool(tagloop_of(request).jobs.stop, _job_id(job_id))
    return see_other(_back((await request.form()).get("back"), job_id, "stop"))


@router.post("/console/jobs/{job_id}/retry")
async def retry(request: Request, job_id: str, session: AdminSession) -> Response:
    await run_in_threadpool(tagloop_of(request).jobs.retry, _job_id(job_id))
    return see_other(_back((await request.form()).get("back"), job_id, "retry"))
