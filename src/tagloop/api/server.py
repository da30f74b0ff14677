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
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagloop import __version__
from tagloop.api import (
    a2i,
    comprehend,
    inbox_routes,
    notify_routes,
    pool_routes,
    profile_routes,
    review_routes,
    v1,
)
from tagloop.api.auth import (
    MISSING,
    PRINCIPAL,
    bearer_principal,
    bearer_secret,
    check_scrape,
    signer_principal,
)
from tagloop.api.coalesce import Coalescer
from tagloop.api.comprehend.transport import TARGET_PREFIX
from tagloop.api.direct import DirectApp
from tagloop.api.docs import add_docs
from tagloop.api.errors import LIBRARY_ERRORS, answer, from_http_exception, native_error, translate
from tagloop.api.local_only import LocalOnly
from tagloop.api.metrics import DeliveryCounts, InboxCounters, ServerMetrics
from tagloop.api.sigv4 import ALGORITHM
from tagloop.app import Tagloop
from tagloop.domain.limits import over_limit
from tagloop.errors import (
    AuthenticationFailed,
    InvalidBody,
    MissingAuthentication,
    RequestTooLarge,
    ServiceUnavailable,
    TagloopError,
    Unexpected,
)
from tagloop.services.keys import KeyService
from tagloop.settings import Settings
from tagloop.web import add_web, error_page, owns
from tagloop.web.security import role

log = logging.getLogger(__name__)


def error_response(scope: Scope, error: TagloopError) -> Response:
    """``error`` in the shape of the door the request's path belongs to: Comprehend's (JSON 1.1
    or CBOR) for its paths, the Lambda envelope of ``/v1/endpoints/{name}/invoke``, the native
    ``{"error": {...}}`` for every other path but the web UI's (an HTML page, or the way to
    its login page)."""
    door = a2i.error_door(scope)  # the SageMaker control plane (POST /) and the A2I runtime
    if door is not None:
        return door(error)
    protocol = comprehend.protocol_of(scope)
    if protocol is not None:
        return comprehend.aws_error(error, protocol)
    if owns(scope):
        return error_page(scope, error, answer(error).status)
    return v1.invoke_error(error) if v1.is_invoke(scope) else native_error(error)


def _closing(response: Response) -> Response:
    """``response`` with ``Connection: close``: uvicorn (httptools or h11) then closes the
    connection once it is sent, rather than reading the rest of an unread body to discard it."""
    response.headers["connection"] = "close"
    return response


def _has_body(headers: dict[bytes, bytes]) -> bool:
    """Whether a request (HTTP/1.1) carries a body: a Content-Length above 0 or a Transfer-Encoding."""
    length = headers.get(b"content-length", b"0")
    return b"transfer-encoding" in headers or not length.isdigit() or int(length) > 0


class MeasureAndLimit:
    """Pure ASGI middleware: bounds request bodies (answering in the shape of the request's
    door) and records request counts and latency per route (cheaper than Starlette's
    BaseHTTPMiddleware).

    A body is bounded by ``TAGLOOP_MAX_BODY_BYTES`` whatever its transfer encoding. A
    Content-Length over the limit is refused before anything is read. Any body is counted as
    it arrives: the read that passes the limit raises :class:`RequestTooLarge` in the app, so
    it stops reading (no more than the limit and one read of uvicorn's, 64 KiB or so, is ever
    held), and the app's answer to its interrupted read (FastAPI makes it a 400) is replaced by
    the 413. Every response that starts before the request's body was read to its end (this
    413, a refusal of ``CredentialsFirst``, a path with no route) says ``Connection: close``,
    so the server closes the connection instead of draining what the client goes on sending.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, max_body_bytes: Callable[[], int]) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes()
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            refused = RequestTooLarge(
                over_limit(f"request body is {int(length):,} bytes", limit, "max_body_bytes")
            )
            await _closing(error_response(scope, refused))(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        answered = False  # whether a response started
        unread = _has_body(headers)  # until the message that ends the body is received
        received = 0
        cut: RequestTooLarge | None = None  # set when the body passed the limit

        async def bounded() -> Message:
            nonlocal unread, received, cut
            if cut is not None:
                return {"type": "http.disconnect"}  # nothing more is read of this request
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    what = f"request body is at least {received:,} bytes"
                    cut = RequestTooLarge(over_limit(what, limit, "max_body_bytes"))
                    raise cut
                unread = unread and message.get("more_body", False)
            return message

        async def record(message: Message) -> None:
            nonlocal answered
            if cut is not None and not answered:
                return  # the app's answer to a read the limit cut short: the 413 below replaces it
            if message["type"] == "http.response.start":
                answered = True
                status[0] = message["status"]
                if unread:
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        try:
            try:
                await self.app(scope, bounded, record)
            except Exception:
                if cut is None or answered:
                    raise
                # else what the app raised after its read was cut short: the 413 says why
            if cut is not None and not answered:
                status[0] = 413
                await _closing(error_response(scope, cut))(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request(scope["method"], route, status[0], time.perf_counter() - started)


class CredentialsFirst:
    """Pure ASGI middleware of a server with authentication on: a request that carries a body
    to the native API (``/v1``) or the Comprehend API is refused (401, or 403 on Comprehend's
    paths, in the door's shape) before any of its body is read unless its credential names an
    active key: a Bearer secret of one, or a well-formed SigV4 ``Authorization`` header naming
    one's access key id. FastAPI reads a route's body before its dependencies (the scope
    checks) run, and a SigV4 signature covers the body's hash; so anonymous clients and
    made-up keys never get their bodies read, and what only the body can prove (the
    signature) and the scope are still checked by the routes. Requests without a body go to
    their routes unchanged (a 404 or 405 stays one), and so does a JSON 1.1 request without a
    Comprehend ``X-Amz-Target`` (its route refuses it before its body).

    ``native=False`` leaves ``/v1`` to the routes: for the direct routes (``api/direct.py``),
    whose scope checks run before they read a body. Keys come from the key cache, else from
    the database on a worker thread; a Bearer key found is left in the scope for ``require()``,
    which checks its scope without looking it up again.
    """

    def __init__(self, app: ASGIApp, keys: KeyService, native: bool = True) -> None:
        self.app = app
        self.keys = keys
        self.native = native

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await self._identify(scope)
            except Exception as exc:
                error = translate(exc)
                if not isinstance(error, AuthenticationFailed):  # the database, most likely
                    log.warning("%s: checking a credential: %s", scope["path"], error.message, exc_info=exc)
                await error_response(scope, error)(scope, receive, send)  # MeasureAndLimit closes it
                return
        await self.app(scope, receive, send)

    async def _identify(self, scope: Scope) -> None:
        """Raises unless the request is for neither API, has no body, or names an active key."""
        path = scope["path"]
        native = self.native and (path.startswith("/v1/") or path == "/v1")
        door = None if native else comprehend.protocol_of(scope)
        if not native and door is None:
            return
        headers = scope["headers"]
        if not _has_body(dict(headers)):
            return
        if native:
            header = next((value for name, value in headers if name == b"authorization"), b"")  # as require()
            secret = bearer_secret(header.decode("latin-1"))
            if secret is not None:
                scope[PRINCIPAL] = await bearer_principal(self.keys, secret)
            elif header.partition(b" ")[0] == ALGORITHM.encode():  # for the routes that take SigV4
                await signer_principal(self.keys, header.decode("latin-1"))
            else:
                raise MissingAuthentication(MISSING)
            return
        if door == "json":
            target = next((value for name, value in headers if name == b"x-amz-target"), b"")
            if not target.decode("latin-1").startswith(TARGET_PREFIX):
                return  # not a Comprehend operation: the route refuses it before reading its body
        authorization = b",".join(value for name, value in headers if name == b"authorization")
        await signer_principal(self.keys, authorization.decode("latin-1"))  # as SigV4 joins repeats


def create_app(settings: Settings | None = None, start_workers: bool = True) -> FastAPI:
    """The ASGI app; with ``start_workers`` it also runs queued jobs in background threads."""
    tagloop = Tagloop(settings or Settings())
    tagloop.prediction_log.use_process()  # keeps encoding and inserting off this process's GIL
    tagloop.review_tasks.use_process(tagloop.database.url)  # routed predictions' tasks: likewise
    tagloop.use_review_journal()  # ... answered once journalled, not once committed
    metrics = ServerMetrics(tagloop.endpoints, tagloop.monitoring)  # drift gauges: services/monitoring.py
    metrics.registry.register(DeliveryCounts(tagloop.notify))  # notifications by status (issue 15)
    metrics.registry.register(InboxCounters(tagloop.inbox))  # files processed/failed per inbox

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            tagloop.start_workers()
            tagloop.start_ticker()  # the learning loop's triggers (TAGLOOP_LOOP_TICK_SECONDS)
        tagloop.endpoints.follow()
        await run_in_threadpool(tagloop.replay_review_journal)  # of server processes gone (a kill)
        if await run_in_threadpool(tagloop.endpoints.routes_any):
            await tagloop.review_tasks.prepare()  # the task writer process, before the first routed request
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
    else:  # anonymous requests and unknown keys are refused before their bodies are read
        app.add_middleware(CredentialsFirst, keys=tagloop.keys)
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
    app.include_router(review_routes.router)
    app.include_router(pool_routes.router)  # the unlabelled pool, active-learning fills
    app.include_router(notify_routes.router)  # notification channels, delivery log (issue 15)
    app.include_router(inbox_routes.router)  # inboxes: watched folders and S3 prefixes (issue 15)
    app.include_router(profile_routes.router)  # import profiles (issue 15)
    app.include_router(comprehend.router)
    app.include_router(a2i.runtime_router)  # sagemaker-a2i-runtime: /human-loops
    # the web UI (/, /login, /review, /moderate, /admin, /static; web/), where a reviewer signed
    # in answers A2I loops whose flow has a task template on the loop pages, in an iframe
    app.include_router(a2i.loop_pages(reviewer=role("reviewer")))
    add_web(app, task_ui=a2i.task_ui_url)
    # classify and the Comprehend API skip the rest of FastAPI's stack (see api/direct.py)
    app.go_direct(
        lambda inner: MeasureAndLimit(
            LocalOnly(inner) if local_only else CredentialsFirst(inner, tagloop.keys, native=False), **limits
        ),
        [v1.router, comprehend.router],
    )
    return app
