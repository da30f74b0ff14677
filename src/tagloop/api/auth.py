"""Authentication of the native API (``Authorization: Bearer <secret>``) and scopes.

Every ``/v1`` route declares the scope it needs with ``Depends(require("classify"))``; the
test suite enumerates the routes so that a route without it fails. The Comprehend API is
authenticated by AWS Signature V4 instead (:mod:`tagloop.api.sigv4`, checked per operation
in :mod:`tagloop.api.comprehend.transport`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from tagloop.api.state import tagloop_of
from tagloop.errors import AccessDenied, MissingAuthentication, UnrecognizedClient
from tagloop.services.keys import Principal

DEV_PRINCIPAL = Principal("no-auth", "no-auth (development mode)", "admin")


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks it holds ``scope``.

    It raises the errors of ``tagloop.errors`` (the native API answers them with 401 for
    missing or unknown credentials, 403 for a scope too narrow: see ``api/errors.py``).

    It is a coroutine so that FastAPI calls it in the event loop rather than handing it to
    a worker thread: keys are cached in memory, and looking one up costs microseconds.
    """

    async def check(request: Request) -> Principal:
        tagloop = tagloop_of(request)
        if not tagloop.settings.auth:
            return DEV_PRINCIPAL
        header = request.headers.get("authorization", "")
        kind, _, credential = header.partition(" ")
        if kind.lower() != "bearer" or not credential.strip():
            raise MissingAuthentication("missing credentials: send Authorization: Bearer <secret>")
        known, principal = tagloop.keys.cached_bearer(credential.strip())
        if not known:
            principal = await run_in_threadpool(tagloop.keys.by_bearer, credential.strip())
        if principal is None:
            raise UnrecognizedClient("invalid or revoked API key")
        if not principal.allows(scope):
            raise AccessDenied(f"this key's scope is {principal.scope!r}; this call needs {scope!r}")
        request.state.principal = principal
        return principal

    check.required_scope = scope  # type: ignore[attr-defined]
    return check


ClassifyScope = Annotated[Principal, Depends(require("classify"))]
AdminScope = Annotated[Principal, Depends(require("admin"))]


_ADMIN = require("admin")


async def check_scrape(request: Request) -> None:
    """Let the request read /metrics, or raise 401 (no or wrong credentials) / 403 (scope)."""
    settings = tagloop_of(request).settings
    if not settings.auth:
        return
    kind, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if kind.lower() != "bearer" or not credential:
        raise MissingAuthentication(
            "missing credentials: /metrics needs Authorization: Bearer with TAGLOOP_METRICS_TOKEN "
            "or an admin API key"
        )
    token = settings.metrics_token
    if token and hmac.compare_digest(credential.encode(), token.encode()):
        return
    await _ADMIN(request)
