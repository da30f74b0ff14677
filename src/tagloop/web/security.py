"""Who is signed in, what their role lets them reach, and what every web page sends along.

- **Session cookie** ``tagloop_session``: the random token of a login (``services/users.py``
  keeps its SHA-256), ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
  page, link or form makes the browser send it, so even the GET pages that lease a task are
  out of other sites' reach; the price: following a link to tagloop from another site shows
  the login page once), ``Secure`` when the request came over HTTPS (behind a TLS proxy:
  uvicorn's ``--forwarded-allow-ips`` makes the scheme https), ``Path=/``, for the session's
  lifetime.
- **Role guards**: every web route declares what it needs with :func:`role`
  (``public``, ``reviewer``, ``moderator``, ``admin``; the dependency's ``required_role``);
  the route enumeration test fails on a route without one. Not signed in: a GET is sent to
  ``/login?next=...``; a role too low: 403.
- **CSRF**: every POST of a signed-in user must send the session's CSRF token (form field
  ``csrf`` or header ``X-CSRF-Token``, which htmx sends from the page's ``hx-headers``);
  missing or wrong: 403, before the route runs. The login form, which has no session yet,
  uses a double-submit token (a ``SameSite=Strict`` cookie scoped to ``/login`` and the
  same value in the form). POSTs with an ``Origin`` naming another host, or
  ``Sec-Fetch-Site: cross-site``, are refused as well.
- **Headers** (:data:`PAGE_HEADERS`): a Content-Security-Policy with scripts and styles from
  this server's files only (no inline script or style, no eval: htmx is configured so),
  framing refused, ``Cache-Control: no-store`` (pages hold task texts), no referrer
  to other sites, no MIME sniffing.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tagloop.app import Tagloop
from tagloop.errors import AccessDenied, MissingAuthentication
from tagloop.services.users import SESSION_HOURS, WebSession

SESSION_COOKIE = "tagloop_session"
LOGIN_COOKIE = "tagloop_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
HOME = "/review"
PREFIXES = ("/review", "/moderate", "/admin", "/predictions", "/console", "/static/")
PAGES = ("/", "/login", "/logout")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
CSRF_REFUSED = "missing or wrong CSRF token: reload the page and try again"
_SESSION = "tagloop.web_session"
R = TypeVar("R", bound=Response)


def owns_path(path: str) -> bool:
    """Whether ``path`` is the web UI's (its errors are answered as HTML pages)."""
    return path in PAGES or path.startswith(PREFIXES) or path in (p.rstrip("/") for p in PREFIXES)


def tagloop_of(request: Request) -> Tagloop:
    tagloop: Tagloop = request.app.state.tagloop
    return tagloop


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def with_page_headers(response: R) -> R:
    response.headers.update(PAGE_HEADERS)
    return response


async def current_session(request: Request) -> WebSession | None:
    """The signed-in session of the request's cookie, looked up once per request."""
    if _SESSION in request.scope:
        found: WebSession | None = request.scope[_SESSION]
        return found
    token = request.cookies.get(SESSION_COOKIE)
    session = await run_in_threadpool(tagloop_of(request).users.session, token) if token else None
    request.scope[_SESSION] = session
    return session


def refuse_cross_site(request: Request) -> None:
    """403 for a POST that says it comes from another site."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise AccessDenied("cross-site request refused")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise AccessDenied(f"request from another origin ({origin[:100]}) refused")


def same_token(sent: str | None, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(str(sent).encode(), expected.encode())


async def check_csrf(request: Request, expected: str) -> None:
    """403 unless the POST carries ``expected`` (header, else form field)."""
    refuse_cross_site(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not same_token(sent, expected):
        raise AccessDenied(CSRF_REFUSED)


def role(required: str) -> Callable[[Request], Awaitable[WebSession]]:
    """A dependency: the signed-in session, its user holding ``required`` or a higher role;
    for a POST, also its CSRF token checked."""

    async def check(request: Request) -> WebSession:
        session = await current_session(request)
        if session is None:
            raise MissingAuthentication("log in to use the web UI")
        if not session.user.allows(required):
            raise AccessDenied(f"this page is for the role {required} and above; you are {session.user.role}")
        if request.method not in ("GET", "HEAD"):
            await check_csrf(request, session.csrf_token)
        return session

    check.required_role = required  # type: ignore[attr-defined]
    return check


async def public(request: Request) -> None:
    """Anyone may reach the route (the login page, static files)."""


public.required_role = "public"  # type: ignore[attr-defined]


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of the web UI on this server, else :data:`HOME`
    (never another site: ``//host``, ``/\\host``, schemes and control characters are refused)."""
    if not value or len(value) > 2_000 or not value.startswith("/") or value.startswith("//"):
        return HOME
    if "\\" in value or any(ord(char) < 33 or ord(char) == 127 for char in value):
        return HOME
    path = urlsplit(value).path
    if not owns_path(path) or path in ("/login", "/logout") or path.startswith("/static/"):
        return HOME
    return value


def _cookie(response: Response, request: Request, name: str, value: str, path: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, Secure over HTTPS; ``max_age`` 0 deletes it."""
    secure = is_https(request)
    response.set_cookie(
        name, value, max_age=max_age, path=path, secure=secure, httponly=True, samesite="strict"
    )


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    _cookie(response, request, SESSION_COOKIE, token, "/", SESSION_HOURS * 3600)


def clear_session_cookie(response: Response, request: Request) -> None:
    _cookie(response, request, SESSION_COOKIE, "", "/", 0)


def login_token(request: Request) -> str:
    """The login form's double-submit token: the cookie's, or a new one."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    return current if 20 <= len(current) <= 100 else secrets.token_urlsafe(32)


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    _cookie(response, request, LOGIN_COOKIE, token, "/login", 3600)


def clear_login_cookie(response: Response, request: Request) -> None:
    _cookie(response, request, LOGIN_COOKIE, "", "/login", 0)
