"""The FastAPI application: /healthz, /metrics, the native API under /v1."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagloop import __version__
from tagloop.api import comprehend, v1
from tagloop.api.auth import check_scrape
from tagloop.api.coalesce import Coalescer
from tagloop.api.direct import DirectApp
from tagloop.api.docs import add_docs
from tagloop.api.errors import LIBRARY_ERRORS, from_http_exception, native_error, translate
from tagloop.api.local_only import LocalOnly
from tagloop.api.metrics import ServerMetrics
from tagloop.app import Tagloop
from tagloop.domain.limits import over_limit
from tagloop.errors import InvalidBody, RequestTooLarge, ServiceUnavailable, TagloopError, Unexpected
from tagloop.settings import Settings

log = logging.getLogger(__name__)


def error_response(scope: Scope, error: TagloopError) -> Response:
    """``error`` in the shape of the door the request's path belongs to: Comprehend's (JSON 1.1
    or CBOR) for its paths, the Lambda envelope of ``/v1/endpoints/{name}/invoke``, the native
    ``{"error": {...}}`` for every other path."""
    protocol = comprehend.protocol_of(scope)
    if protocol is not None:
        return comprehend.aws_error(error, protocol)
    return v1.invoke_error(error) if v1.is_invoke(scope) else native_error(error)


class MeasureAndLimit:
    """Pure ASGI middleware: refuses bodies over the limit (by Content-Length, in the shape of
    the request's door) and records request counts and latency per route (cheaper than
    Starlette's BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, max_body_bytes: Callable[[], int]) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes()
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            refused = RequestTooLarge(
                over_limit(f"request body is {int(length):,} bytes", limit, "max_body_bytes")
            )
            await error_response(scope, refused)(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request(scope["method"], route, status[0], time.perf_counter() - started)


def create_app(settings: Settings | None = None, start_workers: bool = True) -> FastAPI:
    """The ASGI app; with ``start_workers`` it also runs queued jobs in background threads."""
    tagloop = Tagloop(settings or Settings())
    tagloop.prediction_log.use_process()  # keeps encoding and inserting off this process's GIL
    metrics = ServerMetrics(tagloop.endpoints)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            tagloop.start_workers()
        tagloop.endpoints.follow()
        tagloop.prediction_history.start_retention()  # TAGLOOP_PREDICTION_RETENTION_DAYS: old rows go
        gc.collect()
        gc.freeze()  # the app's own long-lived objects: out of every later full collection
        yield
        tagloop.close()

    docs = tagloop.settings.api_docs  # TAGLOOP_API_DOCS: false serves no schema and no docs pages
    app = DirectApp(
        title="tagloop",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: add_docs serves them here
        redoc_url=None,
    )
    if docs:
        add_docs(app)
    app.state.tagloop = tagloop
    app.state.metrics = metrics
    app.state.coalescer = Coalescer(tagloop.predictions.classify, observe=metrics.scored_together.observe)

    limits: dict[str, Any] = {"metrics": metrics, "max_body_bytes": lambda: tagloop.settings.max_body_bytes}
    local_only = not tagloop.settings.auth  # no API keys: answer this machine's own requests only
    if local_only:
        app.add_middleware(LocalOnly)
    app.add_middleware(MeasureAndLimit, **limits)

    # Every error is answered in the shape of its door (error_response); the table of
    # statuses and types, and the translation of library errors, are in api/errors.py.
    @app.exception_handler(TagloopError)
    async def tagloop_error(request: Request, exc: TagloopError) -> Response:
        return error_response(request.scope, exc)

    async def library_error(request: Request, exc: Exception) -> Response:
        error = translate(exc)
        where = f"{request.method} {request.url.path}"
        if isinstance(error, ServiceUnavailable):
            log.warning("%s: %s (%s: %s)", where, error.message, type(exc).__name__, exc)
        else:  # a fault of the installation or a bug: the traceback is for the operator
            log.error("%s: %s", where, error.message, exc_info=exc)
        return error_response(request.scope, error)

    for kind in LIBRARY_ERRORS:
        app.add_exception_handler(kind, library_error)

    @app.exception_handler(500)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # what no other handler takes; the server (or DirectApp) logs it with its traceback
        return error_response(request.scope, Unexpected("internal server error"))

    @app.exception_handler(ClientDisconnect)
    async def gone(_: Request, exc: ClientDisconnect) -> Response:
        return Response(status_code=499)  # the client left before sending its body: no one to answer

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(request.scope, from_http_exception(exc, request.method, request.url.path))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        details = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return error_response(request.scope, InvalidBody(details))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, "process": os.getpid()})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        await check_scrape(request)  # TAGLOOP_METRICS_TOKEN or an admin key (open without auth)
        metrics.models_loaded.set(len(tagloop.models))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(v1.router)
    app.include_router(comprehend.router)
    # classify and the Comprehend API skip the rest of FastAPI's stack (see api/direct.py)
    app.go_direct(
        lambda inner: MeasureAndLimit(LocalOnly(inner) if local_only else inner, **limits),
        [v1.router, comprehend.router],
    )
    return app
