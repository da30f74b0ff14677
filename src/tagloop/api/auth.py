"""Authentication of the native API (``Authorization: Bearer <secret>``) and scopes.

Every ``/v1`` route declares the scope it needs with ``Depends(require("classify"))``; the
test suite enumerates the routes so that a route without it fails. The Comprehend API is
authenticated by AWS Signature V4 instead (:mod:`tagloop.api.sigv4`, checked per operation
in :mod:`tagloop.api.comprehend.transport`).

A route may also take requests signed with AWS Signature V4 by a tagloop key
(``require("classify", signed_for=EXECUTE_API)``): clients written for an API Gateway secured
by IAM sign for the service ``execute-api``, and work unchanged. The signature is checked by
the same rules as the Comprehend API's (``sigv4.verify``: signed host, date and content type,
the body's hash, the server's region); the dependency reads the body for it, which Starlette
keeps for the route. A Bearer request costs what it did: SigV4 is tried only when the
``Authorization`` header is not a Bearer one.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from tagloop.api.sigv4 import ALGORITHM, claimed_access_key, verify
from tagloop.api.state import tagloop_of
from tagloop.errors import AccessDenied, InvalidSignature, MissingAuthentication, UnrecognizedClient
from tagloop.services.keys import Principal

DEV_PRINCIPAL = Principal("no-auth", "no-auth (development mode)", "admin")
EXECUTE_API = ("execute-api",)
"""The SigV4 service of an API Gateway API: what its IAM-signing clients name."""


def require(scope: str, signed_for: tuple[str, ...] = ()) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks it holds ``scope``.

    ``signed_for``: the SigV4 services (e.g. :data:`EXECUTE_API`) whose signatures the route
    takes as well as a Bearer secret; none by default.

    It raises the errors of ``tagloop.errors`` (the native API answers them with 401 for
    missing or unknown credentials, 403 for a scope too narrow: see ``api/errors.py``).

    It is a coroutine so that FastAPI calls it in the event loop rather than handing it to
    a worker thread: keys are cached in memory, and looking one up costs microseconds.
    """
    missing = "missing credentials: send Authorization: Bearer <secret>"
    if signed_for:
        missing += f", or sign the request with AWS Signature V4 for {' or '.join(signed_for)}"

    async def check(request: Request) -> Principal:
        tagloop = tagloop_of(request)
        if not tagloop.settings.auth:
            return DEV_PRINCIPAL
        header = request.headers.get("authorization", "")
        kind, _, credential = header.partition(" ")
        principal: Principal | None
        if kind.lower() != "bearer" or not credential.strip():
            if not signed_for or kind != ALGORITHM:
                raise MissingAuthentication(missing)
            principal = await _signed(request, signed_for)
        else:
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


async def _signed(request: Request, services: tuple[str, ...]) -> Principal:
    """The key that signed ``request`` with SigV4 for one of ``services``, checked as the
    Comprehend API checks its requests (region: ``TAGLOOP_AWS_REGION`` unless
    ``TAGLOOP_AWS_ANY_REGION``). An unknown key is refused before the body is read; then the
    body is read (the route reads it again from Starlette's cache) and the signature checked.
    Key lookups may query the database: they run on a worker thread."""
    tagloop = tagloop_of(request)
    akid = claimed_access_key(request.headers.get("authorization", ""))
    if akid is None:
        raise InvalidSignature("Authorization header is not an AWS Signature Version 4 header")
    principal, _ = await run_in_threadpool(tagloop.keys.by_access_key, akid)
    if principal is None:
        raise UnrecognizedClient("The security token included in the request is invalid.")
    settings = tagloop.settings
    region = None if settings.aws_any_region else settings.aws_region
    body = await request.body()
    headers = request.headers.items()  # repeated headers kept: SigV4 signs them joined
    return await run_in_threadpool(
        verify, tagloop.keys, request.method, str(request.url), headers, body, services, region
    )


ClassifyScope = Annotated[Principal, Depends(require("classify"))]
AdminScope = Annotated[Principal, Depends(require("admin"))]
SignedClassifyScope = Annotated[Principal, Depends(require("classify", signed_for=EXECUTE_API))]
"""Scope ``classify``, by a Bearer secret or a SigV4 signature for ``execute-api``."""


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
