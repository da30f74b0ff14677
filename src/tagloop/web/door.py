"""The web UI as one of the server's doors: its routes, and its answers to errors (HTML pages,
or the way to the login page), which ``api/server.py`` uses for the paths :func:`owns` names."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Scope

from tagloop.errors import AccessDenied, AuthenticationFailed, NotFound, TagloopError
from tagloop.web import (
    admin_console,
    admin_inboxes,
    console,
    pages,
    predictions,
    review,
    review_stats,
    routing,
)
from tagloop.web.render import render
from tagloop.web.security import HOME, owns_path, safe_next, with_page_headers

HEADINGS = {400: "Bad request", 401: "Log in first", 403: "Not allowed", 404: "Not found", 409: "Conflict"}


def add_web(app: FastAPI, task_ui: review.TaskUi | None = None) -> None:
    """Mount the web UI's routes on the server's app. ``task_ui(tagloop, task)``: the URL of
    a page that renders a task itself (an A2I flow's task template), shown in an iframe of
    the review page instead of tagloop's label buttons; None for tagloop's own page."""
    app.state.web_task_ui = task_ui
    app.include_router(pages.router)
    app.include_router(review.router)
    app.include_router(routing.router)
    app.include_router(predictions.router)
    app.include_router(review_stats.router)
    app.include_router(admin_console.router)
    app.include_router(admin_inboxes.router)
    app.include_router(console.router)


def owns(scope: Scope) -> bool:
    """Whether the request is the web UI's (``POST /`` is the Comprehend API's, not ours)."""
    path = scope.get("path", "")
    return owns_path(path) and not (path == "/" and scope.get("method") not in ("GET", "HEAD"))


def error_page(scope: Scope, error: TagloopError, status: int) -> Response:
    """``error`` for a person in a browser: not signed in, the way to the login page (a
    redirect for a GET, ``HX-Redirect`` for htmx); anything else, a page saying what happened."""
    request = Request(scope)
    session = scope.get("tagloop.web_session")
    if isinstance(error, AuthenticationFailed):
        here = scope.get("path", "/") + (f"?{request.url.query}" if request.url.query else "")
        target = (
            "/login" if safe_next(here) == HOME and here != HOME else f"/login?next={quote(here, safe='/')}"
        )
        if request.headers.get("hx-request"):
            return with_page_headers(Response(status_code=401, headers={"HX-Redirect": target}))
        if request.method in ("GET", "HEAD"):
            return with_page_headers(RedirectResponse(target, status_code=303))
        session = None
    if isinstance(error, AccessDenied | NotFound) or status < 500:
        message = error.message
    else:  # the server's fault: details are in its log
        message = "something went wrong on the server; the administrator finds the details in its log"
    html = render(
        "error.html",
        title=HEADINGS.get(status, "Error"),
        session=session,
        active="",
        status=status,
        heading=HEADINGS.get(status, "Error"),
        message=message,
        back="/login" if session is None else HOME,
        back_label="Log in" if session is None else "Back to your queue",
    )
    return with_page_headers(HTMLResponse(html, status_code=status))
