"""The web UI's own pages: ``/`` (to the login page or the queue), ``/login``, ``/logout``,
``/admin`` (users), and ``/static/*`` (this package's CSS and scripts, htmx vendored)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from tagloop.errors import AccessDenied, NotFound
from tagloop.services.users import WebSession
from tagloop.web.render import STATIC, page
from tagloop.web.security import (
    CSRF_FIELD,
    CSRF_REFUSED,
    HOME,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    clear_login_cookie,
    clear_session_cookie,
    current_session,
    login_token,
    public,
    refuse_cross_site,
    role,
    safe_next,
    same_token,
    set_login_cookie,
    set_session_cookie,
    tagloop_of,
    with_page_headers,
)

router = APIRouter(include_in_schema=False)
Public = [Depends(public)]
AdminSession = Annotated[WebSession, Depends(role("admin"))]


def see_other(location: str) -> RedirectResponse:
    return with_page_headers(RedirectResponse(location, status_code=303))


def text_field(form: FormData, name: str, limit: int = 2_000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


@router.get("/", dependencies=Public)
async def index(request: Request) -> Response:
    """A signed-in person goes to their queue, anyone else to the login page."""
    return see_other(HOME if await current_session(request) else "/login")


@router.get("/login", dependencies=Public)
async def login_page(request: Request, next: str | None = None) -> Response:
    if await current_session(request) is not None:
        return see_other(safe_next(next))
    token = login_token(request)
    response = await page(
        request, "login.html", "Log in", login_csrf=token, next=safe_next(next), name="", message=None
    )
    set_login_cookie(response, request, token)
    return response


@router.post("/login", dependencies=Public)
async def login(request: Request) -> Response:
    refuse_cross_site(request)
    form = await request.form()
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not same_token(text_field(form, CSRF_FIELD), expected):
        raise AccessDenied(CSRF_REFUSED)
    name, password = text_field(form, "name", 200), text_field(form, "password", 2_000)
    address = request.client.host if request.client else "unknown"
    users = tagloop_of(request).users
    result = await run_in_threadpool(users.login, name, password, address)
    if result.session is None or result.token is None:
        response = await page(
            request,
            "login.html",
            "Log in",
            status=429 if result.retry_after else 401,
            session=None,
            login_csrf=expected,
            next=safe_next(text_field(form, "next")),
            name=name.strip().lower()[:63],
            message=result.message,
        )
        if result.retry_after:
            response.headers["Retry-After"] = str(result.retry_after)
        return response
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:  # no session survives a login: a planted cookie gains nothing (fixation)
        await run_in_threadpool(users.logout, previous)
    redirect = see_other(safe_next(text_field(form, "next")))
    set_session_cookie(redirect, request, result.token)
    clear_login_cookie(redirect, request)
    return redirect


@router.post("/logout", dependencies=Public)
async def logout(request: Request) -> Response:
    """Ends the session (its row is deleted); without a live session, just forgets the cookie."""
    session = await current_session(request)
    if session is not None:
        await check_csrf(request, session.csrf_token)
        await run_in_threadpool(tagloop_of(request).users.logout, request.cookies.get(SESSION_COOKIE))
    response = see_other("/login")
    clear_session_cookie(response, request)
    return response


@router.get("/admin")
async def admin(request: Request, session: AdminSession) -> Response:
    users = await run_in_threadpool(tagloop_of(request).users.list)
    return await page(request, "admin.html", "Admin", session=session, active="admin", users=users)


@router.post("/admin/users/{name}/{action}")
async def admin_user(request: Request, name: str, action: str, session: AdminSession) -> Response:
    users = tagloop_of(request).users
    if action not in ("disable", "enable"):
        raise NotFound(f"no action {action!r}")
    if name == session.user.name:
        raise AccessDenied("you cannot disable yourself here: use tagloop users disable")
    await run_in_threadpool(users.disable if action == "disable" else users.enable, name)
    return see_other("/admin")


@router.get("/static/{name}", dependencies=Public)
async def static(name: str) -> Response:
    found = STATIC.get(name)
    if found is None:
        raise NotFound(f"no file {name!r}")
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",  # URLs carry the content's hash
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "same-origin",
        "ETag": f'"{found.version}"',
    }
    return Response(found.body, media_type=found.media_type, headers=headers)
