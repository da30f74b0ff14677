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

No body is read for a caller without a credential of an active key: ``require`` checks the
key before the body (the SigV4 signature, which covers the body's hash, after it), and the
server's ``CredentialsFirst`` middleware does the same for the routes FastAPI reads the body
of before their dependencies run (:func:`bearer_principal`, :func:`signer_principal`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from tagloop.api.sigv4 import ALGORITHM, UNKNOWN_KEY, access_key_id, verify
from tagloop.api.state import tagloop_of
from tagloop.errors import AccessDenied, MissingAuthentication, UnrecognizedClient
from tagloop.services.keys import KeyService, Principal

DEV_PRINCIPAL = Principal("no-auth", "no-auth (development mode)", "admin")
EXECUTE_API = ("execute-api",)
"""The SigV4 service of an API Gateway API: what its IAM-signing clients name."""
MISSING = "missing credentials: send Authorization: Bearer <secret>"
PRINCIPAL = "tagloop.principal"
"""The scope key of the Bearer key the server's ``CredentialsFirst`` found before the body:
:func:`require` checks its scope without looking it up again."""


def bearer_secret(header: str) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header, None for any other header."""
    kind, _, credential = header.partition(" ")
    credential = credential.strip()
    return credential if kind.lower() == "bearer" and credential else None


async def bearer_principal(keys: KeyService, secret: str) -> Principal:
    """The active key whose Bearer secret this is: from the key cache in the event loop, else
    looked up on a worker thread."""
    known, principal = keys.cached_bearer(secret)
    if not known:
        principal = await run_in_threadpool(keys.by_bearer, secret)
    if principal is None:
        raise UnrecognizedClient("invalid or revoked API key")
    return principal


async def signer_principal(keys: KeyService, authorization: str) -> Principal:
    """The active key a SigV4 ``Authorization`` header names, the header's presence and shape
    checked but not its signature (that needs the body, whose hash it signs: ``sigv4.verify``):
    what can be refused before a body is read. Cached as :func:`bearer_principal`."""
    akid = access_key_id(authorization)
    known, principal = keys.cached_access_key(akid)
    if not known:
        principal, _ = await run_in_threadpool(keys.by_access_key, akid)
    if principal is None:
        raise UnrecognizedClient(UNKNOWN_KEY)
    return principal


def require(scope: str, signed_for: tuple[str, ...] = ()) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks it holds ``scope``.

    ``signed_for``: the SigV4 services (e.g. :data:`EXECUTE_API`) whose signatures the route
    takes as well as a Bearer secret; none by default.

    It raises the errors of ``tagloop.errors`` (the native API answers them with 401 for
    missing or unknown credentials, 403 for a scope too narrow: see ``api/errors.py``).

    It is a coroutine so that FastAPI calls it in the event loop rather than handing it to
    a worker thread: keys are cached in memory, and looking one up costs microseconds.
    """
    missing = MISSING
    if signed_for:
        missing += f", or sign the request with AWS Signature V4 for {' or '.join(signed_for)}"

    async def check(request: Request) -> Principal:
        tagloop = tagloop_of(request)
        if not tagloop.settings.auth:
            return DEV_PRINCIPAL
        principal: Principal | None = request.scope.get(PRINCIPAL)
        if principal is None:
            header = request.headers.get("authorization", "")
            secret = bearer_secret(header)
            if secret is not None:
                principal = await bearer_principal(tagloop.keys, secret)
            elif signed_for and header.partition(" ")[0] == ALGORITHM:
                principal = await _signed(request, signed_for)
            else:
                raise MissingAuthentication(missing)
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
    Key lookups that may query the database run on a worker thread."""
    tagloop = tagloop_of(request)
    await signer_principal(tagloop.keys, request.headers.get("authorization", ""))  # before the body
    settings = tagloop.settings
    region = None if settings.aws_any_region else settings.aws_region
    body = await request.body()
    headers = request.headers.items()  # repeated headers kept: SigV4 signs them joined
    return await run_in_threadpool(
        verify, tagloop.keys, request.method, str(request.url), headers, body, services, region
    )


ClassifyScope = Annotated[Principal, Depends(require("classify"))]
AdminScope = Annotated[Principal, Depends(require("admin"))]
ReviewScope = Annotated[Principal, Depends(require("review"))]
SignedClassifyScope = Annotated[Principal, Depends(require("classify", signed_for=EXECUTE_API))]
"""Scope ``classify``, by a Bearer secret or a SigV4 signature for ``execute-api``."""


_ADMIN = require("admin")


async def check_scrape(request: Request) -> None:
    """Let the request read /metrics, or raise 401 (no or wrong credentials) / 403 (scope)."""
    settings = tagloop_of(request).settings
    if not settings.auth:
        return
    credential = bearer_secret(request.headers.get("authorization", ""))
    if credential is None:
        raise MissingAuthentication(
            "missing credentials: /metrics needs Authorization: Bearer with TAGLOOP_METRICS_TOKEN "
            "or an admin API key"
        )
    token = settings.metrics_token
    if token and hmac.compare_digest(credential.encode(), token.encode()):
        return
    await _ADMIN(request)
