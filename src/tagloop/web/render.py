"""Templates (Jinja2, autoescaped) and the static files the pages load, all from this package:
nothing comes from another host, so the UI works offline."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from fastapi import Request
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from tagloop.app import Tagloop
from tagloop.services.users import WebSession
from tagloop.web.security import current_session, tagloop_of, with_page_headers

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    version: str  # the content's hash: URLs carry it, so a file can be cached for good


def _load_static() -> dict[str, StaticFile]:
    found = {}
    for entry in files("tagloop.web").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            found[entry.name] = StaticFile(body, MEDIA_TYPES[suffix], hashlib.sha256(body).hexdigest()[:12])
    return found


STATIC = _load_static()


def static_url(name: str) -> str:
    return f"/static/{name}?v={STATIC[name].version}"


ENVIRONMENT = Environment(
    loader=PackageLoader("tagloop.web", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.globals["static"] = static_url


def figure(value: Any, digits: int = 3) -> str:
    """A metric as the pages show it: ``0.912``; a missing one as a dash."""
    return "–" if value is None else f"{float(value):.{digits}f}"


def moment(value: str | None) -> str:
    """A stored ISO time as ``2026-12-02 14:05 UTC`` (the server's times are UTC)."""
    return "–" if not value else value[:16].replace("T", " ") + " UTC"


ENVIRONMENT.filters["figure"] = figure
ENVIRONMENT.filters["moment"] = moment


def render(template: str, **context: Any) -> str:
    return ENVIRONMENT.get_template(template).render(**context)


async def page(
    request: Request, template: str, title: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A whole page (or, for ``_``-named templates, a fragment) with the security headers."""
    context.setdefault("session", await current_session(request))
    context.setdefault("active", "")
    html = render(template, title=title, **context)
    return with_page_headers(HTMLResponse(html, status_code=status))


@dataclass(frozen=True)
class NoticePage:
    """A page of what ``load`` reads that says the outcome of a change (the admin listings)."""

    template: str
    title: str
    active: str
    load: Callable[[Tagloop], dict[str, Any]]
    """The page's figures (run in a worker thread: it reaches the database)."""

    async def answer(
        self,
        request: Request,
        session: WebSession,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """The page with ``notice`` after a done change (from the redirect's query), or
        ``error`` with its ``status`` for a refused one."""
        found = await run_in_threadpool(self.load, tagloop_of(request))
        return await page(
            request,
            self.template,
            self.title,
            status=status,
            session=session,
            active=self.active,
            notice=notice,
            error=error,
            **found,
            **context,
        )
