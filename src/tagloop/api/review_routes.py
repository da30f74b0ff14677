"""The review queue under ``/v1/review`` and the export of verified documents: thin routes
over :class:`~tagloop.services.review.ReviewService` and ``services/verified.py``.

A reviewer calling the API is its key: the access key id is the reviewer's name in the
queue, in answers and in agreement figures. Scope ``review`` takes tasks, answers, skips and
undoes, and reads tasks, queue figures and agreement; reviewers answer blind, so the answers
of a task are shown to ``admin`` keys only, and moderating, stopping, the moderate queue and
the export of verified documents need ``admin`` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tagloop.api.auth import AdminScope, require
from tagloop.api.review_schemas import (
    AgreementOut,
    AnswerRequest,
    ModerateRequest,
    NextRequest,
    StatsOut,
    TaskList,
    TaskOut,
)
from tagloop.api.state import TagloopDep
from tagloop.domain.names import MAX_NAME, NAME_PATTERN
from tagloop.domain.review import Queue, TaskStatus, TaskView
from tagloop.errors import AccessDenied
from tagloop.services.keys import Principal
from tagloop.services.review import page_token
from tagloop.services.verified import verified_lines

router = APIRouter(prefix="/v1", tags=["review"])

ReviewScope = Annotated[Principal, Depends(require("review"))]
NamePath = Annotated[str, Path(max_length=MAX_NAME, pattern=NAME_PATTERN)]
TaskPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="A task's id.")]
ClassifierQuery = Annotated[str | None, Query(max_length=MAX_NAME, pattern=NAME_PATTERN)]
NO_TASK: dict[int | str, dict[str, Any]] = {
    204: {"description": "Nothing for the caller: the queue is empty (for them)."}
}
EXPORT_TYPES = {"jsonl": "application/x-ndjson", "comprehend-csv": "text/csv; charset=utf-8"}
ACCEPTED = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "text/csv": "comprehend-csv",
}
CHUNK_BYTES = 64 * 1024


def _reviewer(principal: Principal) -> str:
    return principal.access_key_id


def _out(view: TaskView, with_answers: bool = False) -> TaskOut:
    fields = {field.name: getattr(view, field.name) for field in dataclasses.fields(view)}
    fields["answers"] = [dataclasses.asdict(answer) for answer in view.answers] if with_answers else None
    return TaskOut.model_validate(fields)


@router.get("/review/tasks", response_model=TaskList)
def list_tasks(
    tagloop: TagloopDep,
    _: ReviewScope,
    classifier: ClassifierQuery = None,
    status: TaskStatus | None = None,
    queue: Queue | None = None,
    reason: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(max_length=512, description="`next_page` of the page before.")] = None,
) -> TaskList:
    """Review tasks, newest first, a page at a time (answers are not listed: see one task)."""
    views = tagloop.review.list(
        classifier=classifier,
        status=status.value if status else None,
        queue=queue.value if queue else None,
        reason=reason,
        limit=limit,
        after=after,
    )
    following = page_token(views[-1]) if len(views) == limit else None
    return TaskList(tasks=[_out(view) for view in views], next_page=following)


@router.get("/review/tasks/{task_id}", response_model=TaskOut)
def show_task(task_id: TaskPath, tagloop: TagloopDep, principal: ReviewScope) -> TaskOut:
    """One task; with every reviewer's answer for an admin key only."""
    admin = principal.allows("admin")
    return _out(tagloop.review.get(task_id, with_answers=admin), with_answers=admin)


@router.post("/review/next", response_model=TaskOut, responses=NO_TASK)
def next_task(tagloop: TagloopDep, principal: ReviewScope, body: NextRequest | None = None) -> Any:
    """Lease the caller their next task (their live lease first: asking again shows the same
    task). 204 when there is none for them. The `moderate` queue (ties, feedback) needs an
    admin key, and hands out no lease: decide its tasks with `moderate`."""
    body = body or NextRequest()
    if body.queue is Queue.MODERATE and not principal.allows("admin"):
        raise AccessDenied("the moderate queue needs an admin key")
    view = tagloop.review.next_task(_reviewer(principal), queue=body.queue, classifier=body.classifier)
    if view is None:
        return Response(status_code=204)
    return _out(view, with_answers=False)


@router.post("/review/tasks/{task_id}/answer", response_model=TaskOut)
def answer_task(
    task_id: TaskPath, body: AnswerRequest, tagloop: TagloopDep, principal: ReviewScope
) -> TaskOut:
    """Answer the task the caller holds (409 without a lease on it, or for a second answer;
    400 naming a label that is not one of the task's). Returns the task after the answer."""
    view = tagloop.review.answer(task_id, _reviewer(principal), labels=body.labels, seconds=body.seconds)
    return _out(view)


@router.post("/review/tasks/{task_id}/skip", status_code=204)
def skip_task(task_id: TaskPath, tagloop: TagloopDep, principal: ReviewScope) -> Response:
    """Give the task back and put it at the back of the caller's own queue (409 without a lease)."""
    tagloop.review.skip(task_id, _reviewer(principal))
    return Response(status_code=204)


@router.post("/review/undo", response_model=TaskOut, responses={204: {"description": "No answer to undo."}})
def undo(tagloop: TagloopDep, principal: ReviewScope) -> Any:
    """Withdraw the caller's last answer and lease its task to them again (409 once a
    moderator decided it)."""
    view = tagloop.review.undo(_reviewer(principal))
    if view is None:
        return Response(status_code=204)
    return _out(view)


@router.post("/review/tasks/{task_id}/moderate", response_model=TaskOut)
def moderate_task(
    task_id: TaskPath, body: ModerateRequest, tagloop: TagloopDep, principal: AdminScope
) -> TaskOut:
    """A moderator's final labels for a task (a tie, feedback, or overruling a majority)."""
    return _out(tagloop.review.moderate(task_id, _reviewer(principal), body.labels), with_answers=True)


@router.post("/review/tasks/{task_id}/stop", response_model=TaskOut)
def stop_task(task_id: TaskPath, tagloop: TagloopDep, _: AdminScope) -> TaskOut:
    """Stop a task in progress: it leaves the queues (409 for a completed or failed one)."""
    return _out(tagloop.review.stop(task_id), with_answers=True)


@router.get("/review/stats", response_model=StatsOut)
def stats(tagloop: TagloopDep, principal: ReviewScope, classifier: ClassifierQuery = None) -> StatsOut:
    """Tasks waiting in the review and moderate queues, and the caller's own answers."""
    found = tagloop.review.stats(_reviewer(principal), classifier)
    return StatsOut.model_validate(dataclasses.asdict(found))


@router.get("/review/agreement", response_model=AgreementOut)
def agreement(
    tagloop: TagloopDep,
    _: ReviewScope,
    classifier: Annotated[str, Query(max_length=MAX_NAME, pattern=NAME_PATTERN)],
) -> AgreementOut:
    """How much the classifier's reviewers agree: Fleiss' kappa, Krippendorff's alpha (overall
    and per label), the share of agreeing answer pairs, each reviewer's agreement with the
    final labels (reviewers by access key id or user name). Null where undefined."""
    return AgreementOut.model_validate(tagloop.review.agreement(classifier))


def _export_format(request: Request, asked: str | None) -> str:
    if asked is not None:
        return asked
    for part in request.headers.get("accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in ACCEPTED:
            return ACCEPTED[media]
    return "jsonl"


def _chunks(lines: Iterator[str], first: str) -> Iterator[bytes]:
    buffer, size = [first], len(first)
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


@router.get(
    "/classifiers/{name}/verified",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One verified document a line, oldest first.",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        }
    },
)
async def export(
    name: NamePath,
    request: Request,
    tagloop: TagloopDep,
    _: AdminScope,
    format: Annotated[
        Literal["jsonl", "comprehend-csv"] | None,
        Query(description="jsonl or comprehend-csv; default: by Accept (text/csv), else jsonl."),
    ] = None,
) -> StreamingResponse:
    """The classifier's verified documents (consolidated review answers and feedback), streamed
    as JSON lines (`{"text", "labels", "origin"}`) or Comprehend's CSV (`LABEL,text`, no header)."""
    chosen = _export_format(request, format)
    lines = verified_lines(tagloop.database, name, chosen)

    def first() -> str:  # the classifier is looked up here: an unknown one is a 404, not a cut stream
        return next(lines, "")

    head = await run_in_threadpool(first)
    return StreamingResponse(_chunks(lines, head), media_type=EXPORT_TYPES[chosen])
