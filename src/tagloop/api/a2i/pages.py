"""The pages a reviewer answers an A2I loop's task template on, and the crowd elements.

- ``GET /review/loops/{task_id}/ui``: the flow's Liquid template rendered with the loop's
  input (``services/task_templates.py``, autoescaped), in a page whose Content Security Policy
  makes it a sandbox: an opaque origin (no cookies, no same-origin requests), no network access
  but tagloop's own crowd elements (``/a2i/static/``), no form submission anywhere, no framing
  by other sites. What its ``<crowd-form>`` submits is posted to the page that embeds it.
  The ``<script src="https://assets.crowd.aws/crowd-html-elements.js">`` A2I templates start
  with is left out: tagloop's own crowd elements stand in for it (the policy would refuse it).
- ``GET /review/loops/{task_id}``: a page embedding that frame, whose script
  (``a2i-host.js``) sends the answer; the review page can embed the same frame and script.
- ``POST /review/loops/{task_id}/answer``: ``{"answerContent": {...}, "seconds": 12.5}``,
  the reviewer's answer to the task (``ReviewService.answer``; the reviewer must hold the task).
- ``GET /a2i/static/{name}``: the crowd elements (JS, CSS) and the host script; public.

Who the reviewer is comes from a dependency given to :func:`loop_pages` (a web session once
the web UI mounts these routes; by default an API key of scope ``review``, whose access key
id names the reviewer).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from tagloop.api.auth import require
from tagloop.api.state import tagloop_of
from tagloop.app import Tagloop
from tagloop.errors import Conflict, InvalidRequest, NotFound, UnreadableBody
from tagloop.services.human_loops import MAX_INPUT_BYTES
from tagloop.services.keys import Principal
from tagloop.services.task_templates import render_task_ui

STATIC = "/a2i/static"
FILES = {
    "crowd-elements.js": "text/javascript; charset=utf-8",
    "crowd-elements.css": "text/css; charset=utf-8",
    "a2i-host.js": "text/javascript; charset=utf-8",
}
FRAME_POLICY = (
    "default-src 'none'; script-src 'self' {origin} 'unsafe-inline'; "
    "style-src 'self' {origin} 'unsafe-inline'; "
    "img-src 'self' {origin} data:; media-src 'self' {origin} data:; font-src 'self' {origin}; "
    "connect-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'; "
    "sandbox allow-scripts allow-forms"
)
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
AWS_CROWD_SCRIPT = re.compile(
    r"<script\b[^>]*\bsrc=[\"']?https://assets\.crowd\.aws/crowd-html-elements\.js[\"']?[^>]*>\s*</script>",
    re.IGNORECASE,
)
LOOP_SCOPE = "review"
NO_TEMPLATE = "human loop task {task_id!r} has no task template: tagloop's review page shows it"


async def key_reviewer(principal: Annotated[Principal, Depends(require(LOOP_SCOPE))]) -> str:
    """The reviewer a request is made by, by API key (scope ``review``): its access key id."""
    return principal.access_key_id


key_reviewer.required_scope = LOOP_SCOPE  # type: ignore[attr-defined]


def _static(name: str) -> bytes:
    return resources.files("tagloop.api.a2i").joinpath("static", name).read_bytes()


def _html(body: str, policy: str) -> Response:
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={**SAFE_HEADERS, "Content-Security-Policy": policy},
    )


def task_frame(
    template: str, input_content: Any, origin: str, readable: Callable[[str], bool] | None
) -> Response:
    """The sandboxed page of one loop's rendered template."""
    rendered = render_task_ui(AWS_CROWD_SCRIPT.sub("", template), input_content, readable)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{STATIC}/crowd-elements.css">'
        f'<script src="{STATIC}/crowd-elements.js" defer></script>'
        f"</head><body>{rendered}</body></html>"
    )
    return _html(page, FRAME_POLICY.format(origin=origin))


def task_frame_html(task_id: str, title: str = "Task", next_url: str | None = None) -> str:
    """What a review page embeds to show a loop task that has a template: the sandboxed frame,
    a status line and the script that sends the frame's answer (``a2i-host.js``; give the page
    a ``<meta name="csrf-token">`` and it is sent as ``X-CSRF-Token``). The frame dispatches
    ``a2i:answered`` once the answer is saved; without a listener that cancels it, the page
    goes to ``next_url``."""
    quoted = html.escape(task_id, quote=True)
    following = f' data-next-url="{html.escape(next_url, quote=True)}"' if next_url else ""
    return (
        f'<iframe id="a2i-task" class="a2i-task" title="{html.escape(title, quote=True)}" '
        f'src="/review/loops/{quoted}/ui" sandbox="allow-scripts allow-forms" '
        f'data-answer-url="/review/loops/{quoted}/answer"{following}></iframe>'
        '<p id="a2i-status" role="status"></p>'
        f'<script src="{STATIC}/a2i-host.js"></script>'
    )


def host_page(
    task_id: str, title: str, description: str, csrf: str | None = None, next_url: str | None = None
) -> str:
    """A page of its own around :func:`task_frame_html`."""
    meta = f'<meta name="csrf-token" content="{html.escape(csrf, quote=True)}">' if csrf else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>{meta}"
        f'<link rel="stylesheet" href="{STATIC}/crowd-elements.css"></head><body>'
        f'<header class="a2i-header"><h1>{html.escape(title)}</h1>'
        f"<p>{html.escape(description)}</p></header>"
        f"{task_frame_html(task_id, title, next_url)}</body></html>"
    )


def _reviewer(who: Any) -> tuple[str, str | None]:
    """The reviewer's name and the CSRF token their page must send, from what the reviewer
    dependency gave: a name (an API key's access key id), or a web session (``.user.name``,
    ``.csrf_token``)."""
    if isinstance(who, str):
        return who, None
    user = getattr(who, "user", who)
    return str(user.name), getattr(who, "csrf_token", None)


def task_ui_url(tagloop: Tagloop, task: Any) -> str | None:
    """The page that shows a review task itself, for the web review page's iframe: the one
    of a human loop whose flow has a task template; None for every other task (tagloop's
    own page shows those). ``task``: a TaskView (its ``id`` and ``loop_name``)."""
    if getattr(task, "loop_name", None) is None:
        return None
    try:
        loop = tagloop.human_loops.task_of(task.id)
    except NotFound:
        return None
    return f"/review/loops/{quote(task.id, safe='')}" if loop.template is not None else None


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def loop_pages(reviewer: Callable[..., Any] = key_reviewer) -> APIRouter:
    """The loop pages' routes; ``reviewer`` is the FastAPI dependency that says who calls:
    it returns the reviewer's name, or a web session (``.user.name``; its ``.csrf_token`` is
    put in the page for the answer's ``X-CSRF-Token``, which the dependency must check on
    POST). The web UI mounts them with its reviewer role's dependency."""
    router = APIRouter(include_in_schema=False)
    reviewer_name = Depends(reviewer)

    @router.get(STATIC + "/{name}")
    async def crowd_static(name: str) -> Response:
        if name not in FILES:
            raise NotFound(f"no file {name!r}")
        return Response(_static(name), media_type=FILES[name], headers={"X-Content-Type-Options": "nosniff"})

    @router.get("/review/loops/{task_id}/ui")
    async def loop_ui(task_id: str, request: Request, _: Any = reviewer_name) -> Response:
        tagloop = tagloop_of(request)
        loop = await run_in_threadpool(tagloop.human_loops.task_of, task_id)
        if loop.template is None:
            raise NotFound(NO_TEMPLATE.format(task_id=task_id))
        if loop.status != "InProgress":
            raise Conflict(f"human loop task {task_id!r} is {loop.status}")
        readable = tagloop.data_locations.allows_as_is
        return await run_in_threadpool(
            task_frame, loop.template, loop.input_content, _origin(request), readable
        )

    @router.get("/review/loops/{task_id}")
    async def loop_page(task_id: str, request: Request, who: Any = reviewer_name) -> Response:
        loop = await run_in_threadpool(tagloop_of(request).human_loops.task_of, task_id)
        if loop.template is None:
            raise NotFound(NO_TEMPLATE.format(task_id=task_id))
        _, csrf = _reviewer(who)
        return _html(host_page(task_id, loop.title, loop.description, csrf), PAGE_POLICY)

    @router.post("/review/loops/{task_id}/answer")
    async def loop_answer(task_id: str, request: Request, who: Any = reviewer_name) -> Response:
        tagloop = tagloop_of(request)
        raw = await request.body()
        if len(raw) > MAX_INPUT_BYTES:
            raise InvalidRequest(f"an answer is at most {MAX_INPUT_BYTES:,} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UnreadableBody(f"request body is not JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("answerContent"), dict):
            raise InvalidRequest(
                'send {"answerContent": {...}}: what the task template submitted, a JSON object'
            )
        seconds = body.get("seconds")
        if seconds is not None and (not isinstance(seconds, int | float) or not 0 <= seconds < 10**7):
            raise InvalidRequest("seconds must be a number of seconds")
        await run_in_threadpool(tagloop.human_loops.task_of, task_id)  # a loop task, or NotFound
        view = await run_in_threadpool(
            tagloop.review.answer,
            task_id,
            _reviewer(who)[0],
            answer_content=body["answerContent"],
            seconds=seconds,
        )
        payload = {
            "task_id": view.id,
            "status": str(view.status),
            "answered": view.answered,
            "required": view.required,
        }
        return Response(orjson.dumps(payload), media_type="application/json")

    return router
