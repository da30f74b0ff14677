"""The keyboard-first review page (``/review``) and the moderator page (``/moderate``).

A page shows one task: its text, the model's prediction, every label as a button with its key
(``1``-``9``, then letters but the command keys ``s`` and ``u``), best scored first. One key
answers; the answer goes by htmx and the next task's fragment (``_task.html``) replaces the
current one, without a page load. ``Enter`` accepts the model's label (multi-label: submits
the toggled labels, the model's pre-selected), ``S`` skips, ``U`` or ``Ctrl+Z`` undoes the
last answer, ``?`` shows the keys (``static/tagloop.js``). Without JavaScript the same forms
post normally and the page reloads.

Moderators decide ties and end users' feedback on ``/moderate`` with the same keys; their
decision is final (no undo). They see the reviewers' answers and the feedback.

A task of an A2I flow whose task UI renders it (the A2I template) is shown in an iframe of the
URL ``add_web(app, task_ui=...)`` gives for it: that page posts its own answer and then tells
this one (``postMessage({"tagloop": "answered"})``, same origin) to fetch the next task.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tagloop.app import Tagloop
from tagloop.domain.records import Mode
from tagloop.domain.review import Queue, TaskStatus, TaskView, predicted_labels
from tagloop.errors import Conflict, InvalidRequest, NotFound
from tagloop.services.review import MAX_LIST
from tagloop.services.users import WebSession
from tagloop.web.render import page, render
from tagloop.web.security import role, tagloop_of, with_page_headers

router = APIRouter(include_in_schema=False)
ReviewerSession = Annotated[WebSession, Depends(role("reviewer"))]
ModeratorSession = Annotated[WebSession, Depends(role("moderator"))]

COMMAND_KEYS = frozenset("su")
LABEL_KEYS = tuple("123456789") + tuple(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in COMMAND_KEYS)
MAX_SECONDS = 86_400.0
MAX_SKIPPED = 100
TaskUi = Callable[[Tagloop, TaskView], str | None]
"""Given a task, the URL of the page that renders it (an A2I task template), or None."""
SHOWN = (Conflict, InvalidRequest, NotFound)
"""What a person's answer can run into (a lease that ran out, a task someone else closed):
said on the page above the next task, not as an error page."""


@dataclass(frozen=True)
class Choice:
    label: str
    key: str | None  # None past the 33rd label: a button without a key
    score: float | None
    predicted: bool
    proposed: bool = False  # an end user's feedback names it


def choices_of(task: TaskView) -> list[Choice]:
    """The task's labels (best scored first) with their keys and the model's scores."""
    prediction = task.prediction or {}
    scores = dict(zip(prediction.get("labels") or [], prediction.get("scores") or [], strict=False))
    predicted = predicted_labels(task.prediction, task.mode) or frozenset()
    proposed = set((task.feedback or {}).get("labels") or [])
    return [
        Choice(
            label,
            LABEL_KEYS[index] if index < len(LABEL_KEYS) else None,
            float(scores[label]) if isinstance(scores.get(label), int | float) else None,
            label in predicted,
            label in proposed,
        )
        for index, label in enumerate(task.choices)
    ]


def _seconds(form: FormData) -> float | None:
    """The time the page measured from showing the task to the answer, if sane."""
    value = form.get("seconds")
    try:
        seconds = float(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS else None


def _labels(form: FormData) -> list[str]:
    return [value for value in form.getlist("label") if isinstance(value, str)]


def _task_id(form: FormData) -> str:
    value = form.get("task_id")
    if not isinstance(value, str) or not value:
        raise InvalidRequest("task_id: missing")
    return value[:100]


class Desk:
    """One person's view of a queue: what the fragment shows next. Blocking (database):
    run on a worker thread."""

    def __init__(
        self,
        tagloop: Tagloop,
        session: WebSession,
        queue: Queue,
        task_ui: TaskUi | None,
        skipped: tuple[str, ...] = (),
    ) -> None:
        self.tagloop = tagloop
        self.session = session
        self.queue = queue
        self.task_ui = task_ui
        self.skipped = skipped  # moderators' skips, carried by the page (the service keeps none)

    @property
    def name(self) -> str:
        return self.session.user.name

    def context(self, task: TaskView | None = None, notice: str | None = None) -> dict[str, Any]:
        """What ``_task.html`` needs: ``task`` (else the queue's next, leased), its labels, the
        queue's and this person's counts, and a notice."""
        review = self.tagloop.review
        if task is None:
            task = self._next()
        if task is not None and self.queue is Queue.MODERATE:
            task = review.get(task.id, with_answers=True)  # moderators see the answers
        stats = review.stats(self.name)
        return {
            "task": task,
            "choices": choices_of(task) if task is not None else [],
            "multi": task is not None and task.mode is Mode.MULTI_LABEL,
            "task_ui": self.task_ui(self.tagloop, task) if task is not None and self.task_ui else None,
            "stats": stats,
            "notice": notice,
            "queue": self.queue.value,
            "csrf": self.session.csrf_token,
            "skipped": self.skipped,
        }

    def _next(self) -> TaskView | None:
        """The next task: the service's choice; for a moderator who skipped tasks on this page,
        the queue's first one (priority, then age) they did not skip, all again once every
        one was skipped."""
        review = self.tagloop.review
        if self.queue is Queue.MODERATE and self.skipped:
            waiting = review.list(
                queue=Queue.MODERATE.value, status=TaskStatus.IN_PROGRESS.value, limit=MAX_LIST
            )
            waiting.sort(key=lambda view: (-view.priority, view.created_at))
            for view in waiting:
                if view.id not in self.skipped:
                    return view
            self.skipped = ()
        return review.next_task(self.name, queue=self.queue)

    def attempt(self, action: Callable[[], Any]) -> dict[str, Any]:
        """Run ``action``, then show the next task (with what went wrong, if it did)."""
        try:
            action()
        except SHOWN as exc:
            return self.context(notice=exc.message)
        return self.context()

    def answer(self, form: FormData) -> dict[str, Any]:
        review, labels = self.tagloop.review, _labels(form)
        if self.queue is Queue.MODERATE:
            return self.attempt(lambda: review.moderate(_task_id(form), self.name, labels))
        seconds = _seconds(form)
        return self.attempt(lambda: review.answer(_task_id(form), self.name, labels=labels, seconds=seconds))

    def skip(self, form: FormData) -> dict[str, Any]:
        if self.queue is Queue.MODERATE:  # the moderate queue holds no leases to give back
            self.skipped = (*self.skipped, _task_id(form))[-MAX_SKIPPED:]
            return self.context()
        return self.attempt(lambda: self.tagloop.review.skip(_task_id(form), self.name))

    def undo(self) -> dict[str, Any]:
        try:
            task = self.tagloop.review.undo(self.name)
        except SHOWN as exc:
            return self.context(notice=exc.message)
        if task is None:
            return self.context(notice="nothing to undo")
        return self.context(task, notice="your last answer was withdrawn: answer it again")


def _desk(request: Request, session: WebSession, queue: Queue, form: FormData | None = None) -> Desk:
    task_ui = getattr(request.app.state, "web_task_ui", None)
    skipped = (
        tuple(v[:100] for v in form.getlist("skipped") if isinstance(v, str))[-MAX_SKIPPED:] if form else ()
    )
    return Desk(tagloop_of(request), session, queue, task_ui, skipped)


async def _page(request: Request, desk: Desk) -> Response:
    context = await run_in_threadpool(desk.context)
    title = "Moderate" if desk.queue is Queue.MODERATE else "Review"
    return await page(request, "review.html", title, session=desk.session, active=desk.queue.value, **context)


async def _fragment(request: Request, desk: Desk, work: Callable[[], dict[str, Any]]) -> Response:
    """The next task's fragment for htmx; a plain form post (no JavaScript) gets the page again."""
    context = await run_in_threadpool(work)
    if not request.headers.get("hx-request"):
        return with_page_headers(RedirectResponse(f"/{desk.queue.value}", status_code=303))
    return with_page_headers(HTMLResponse(render("_task.html", **context)))


@router.get("/review")
async def review_page(request: Request, session: ReviewerSession) -> Response:
    return await _page(request, _desk(request, session, Queue.REVIEW))


async def _next_fragment(desk: Desk) -> Response:
    return with_page_headers(HTMLResponse(render("_task.html", **await run_in_threadpool(desk.context))))


@router.get("/review/next")
async def review_next(request: Request, session: ReviewerSession) -> Response:
    """The fragment of the reviewer's next task: after a task UI in an iframe answered, and
    every 15 s while the queue is empty."""
    return await _next_fragment(_desk(request, session, Queue.REVIEW))


@router.post("/review/answer")
async def review_answer(request: Request, session: ReviewerSession) -> Response:
    desk, form = _desk(request, session, Queue.REVIEW), await request.form()
    return await _fragment(request, desk, lambda: desk.answer(form))


@router.post("/review/skip")
async def review_skip(request: Request, session: ReviewerSession) -> Response:
    desk, form = _desk(request, session, Queue.REVIEW), await request.form()
    return await _fragment(request, desk, lambda: desk.skip(form))


@router.post("/review/undo")
async def review_undo(request: Request, session: ReviewerSession) -> Response:
    desk = _desk(request, session, Queue.REVIEW)
    return await _fragment(request, desk, desk.undo)


@router.get("/moderate")
async def moderate_page(request: Request, session: ModeratorSession) -> Response:
    return await _page(request, _desk(request, session, Queue.MODERATE))


@router.post("/moderate/answer")
async def moderate_answer(request: Request, session: ModeratorSession) -> Response:
    """The moderator's decision: final."""
    form = await request.form()
    desk = _desk(request, session, Queue.MODERATE, form)
    return await _fragment(request, desk, lambda: desk.answer(form))


@router.get("/moderate/next")
async def moderate_next(request: Request, session: ModeratorSession) -> Response:
    return await _next_fragment(_desk(request, session, Queue.MODERATE))


@router.get("/moderate/agreement")
async def agreement_page(
    request: Request, session: ModeratorSession, classifier: str | None = None
) -> Response:
    """How much reviewers agree, per classifier: kappa, alpha, per label and per reviewer."""
    tagloop = tagloop_of(request)

    def measure() -> tuple[list[str], dict[str, Any] | None]:
        names = [row["name"] for row in tagloop.catalog.classifiers()]
        chosen = classifier if classifier in names else (names[0] if names else None)
        return names, tagloop.review.agreement(chosen) if chosen is not None else None

    names, figures = await run_in_threadpool(measure)
    context: dict[str, Any] = {"session": session, "active": "agreement", "names": names, "figures": figures}
    return await page(request, "agreement.html", "Agreement", **context)


@router.post("/moderate/skip")
async def moderate_skip(request: Request, session: ModeratorSession) -> Response:
    form = await request.form()
    desk = _desk(request, session, Queue.MODERATE, form)
    return await _fragment(request, desk, lambda: desk.skip(form))
