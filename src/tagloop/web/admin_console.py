"""The admin pages of endpoints, access keys and users.

- ``/admin/endpoints``: every endpoint, what it serves (and is deploying), whether it follows
  its classifier's champion or is pinned; admins make it follow, or pin it to a trained version
  (``EndpointService.update``: the same rules and messages as ``tagloop endpoints update``).
- ``/admin/keys``: every access key with its scope and state; admins create one (its secret is
  shown once, on the answer to the form, and never again) and revoke one.
- ``/admin/users``, ``/admin/roles/{name}`` (forms on ``/admin``): add a user with a role and
  password, change a user's role (not one's own: an admin cannot lock themselves out here).

A refused change is said on the page (the service's message, status 400/404/409); a done one
answers with a redirect to the page saying what was done.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from tagloop.app import Tagloop
from tagloop.domain.names import check_name
from tagloop.errors import AccessDenied, AlreadyExists, InvalidRequest, NotFound, ResourceInUse, TagloopError
from tagloop.services.keys import SCOPES
from tagloop.services.users import ROLES, WebSession
from tagloop.web.pages import see_other
from tagloop.web.render import NoticePage, page
from tagloop.web.security import role, tagloop_of

router = APIRouter(include_in_schema=False)
AdminSession = Annotated[WebSession, Depends(role("admin"))]
TRAINED = "TRAINED"
MAX_TEXT = 200
DONE = {
    "followed": "now follows its classifier's champion",
    "pinned": "is pinned",
    "revoked": "is revoked: requests signed with it are refused within seconds",
}


def _text(form: FormData, name: str, limit: int = MAX_TEXT) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


SAID = (InvalidRequest, NotFound, AlreadyExists, ResourceInUse, AccessDenied)
"""What a person's change can run into: said on the page; anything else is the error page."""


def _status(error: TagloopError) -> int:
    """The status of a refused change (as api/errors.py answers these; web may not import api)."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, AlreadyExists | ResourceInUse):
        return 409
    return 403 if isinstance(error, AccessDenied) else 400


# ---- endpoints -----------------------------------------------------------------------------
def _endpoints(tagloop: Tagloop) -> list[dict[str, Any]]:
    """Every endpoint with the trained versions it could be pinned to, newest first."""
    found = []
    versions: dict[str, list[str]] = {}
    for summary in tagloop.endpoints.list():
        classifier = summary["classifier"]
        if classifier not in versions:
            versions[classifier] = [
                version["version"]
                for version in reversed(tagloop.catalog.versions(classifier))
                if version["status"] == TRAINED
            ]
        found.append(summary | {"versions": versions[classifier]})
    return found


ENDPOINTS = NoticePage(
    "c2_endpoints.html", "Endpoints", "endpoints", lambda tagloop: {"endpoints": _endpoints(tagloop)}
)


@router.get("/admin/endpoints")
async def endpoints_page(request: Request, session: AdminSession, done: str = "", name: str = "") -> Response:
    notice = f"Endpoint {name[:63]} {DONE[done]}." if done in ("followed", "pinned") and name else None
    return await ENDPOINTS.answer(request, session, notice=notice)


@router.post("/admin/endpoints/{name}/{action}")
async def endpoint_change(request: Request, name: str, action: str, session: AdminSession) -> Response:
    """``follow``: serve the classifier's champion from now on; ``pin``: stay on the version
    chosen in the form (empty: where it is now)."""
    tagloop = tagloop_of(request)
    form = await request.form()
    try:
        check_name("endpoint", name)
        if action == "follow":
            await run_in_threadpool(lambda: tagloop.endpoints.update(name, follow=True))
        elif action == "pin":
            version = _text(form, "version") or None
            await run_in_threadpool(lambda: tagloop.endpoints.update(name, version=version, follow=False))
        else:
            return await ENDPOINTS.answer(request, session, error=f"no action {action[:40]!r}", status=404)
    except SAID as exc:
        return await ENDPOINTS.answer(request, session, error=exc.message, status=_status(exc))
    done = "followed" if action == "follow" else "pinned"
    return see_other(f"/admin/endpoints?done={done}&name={name}")


# ---- keys ----------------------------------------------------------------------------------
def _keys(tagloop: Tagloop) -> dict[str, Any]:
    """Every access key, the revoked ones last, each group oldest first."""
    keys = tagloop.keys.list()
    keys.sort(key=lambda key: (key["revoked_at"] is not None, key["created_at"]), reverse=False)
    return {"keys": keys}


KEYS = NoticePage("c2_keys.html", "Access keys", "keys", _keys)


async def _keys_page(
    request: Request,
    session: WebSession,
    created: dict[str, Any] | None = None,
    notice: str | None = None,
    error: str | None = None,
    sent: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return await KEYS.answer(
        request,
        session,
        notice,
        error,
        status,
        scopes=SCOPES,
        created=created,
        sent=sent or {"name": "", "scope": "classify"},
    )


@router.get("/admin/keys")
async def keys_page(request: Request, session: AdminSession, revoked: str = "") -> Response:
    notice = f"Key {revoked[:32]} {DONE['revoked']}." if revoked else None
    return await _keys_page(request, session, notice=notice)


@router.post("/admin/keys")
async def key_create(request: Request, session: AdminSession) -> Response:
    """A new key: the answer is the page with its secret, shown this once (no redirect, so a
    reload does not show it again; pages are ``no-store``)."""
    form = await request.form()
    sent = {"name": _text(form, "name", 129), "scope": _text(form, "scope", 20)}
    try:
        created = await run_in_threadpool(tagloop_of(request).keys.create, sent["name"], sent["scope"])
    except SAID as exc:
        return await _keys_page(request, session, error=exc.message, sent=sent, status=_status(exc))
    return await _keys_page(request, session, created=created)


@router.post("/admin/keys/{access_key_id}/revoke")
async def key_revoke(request: Request, access_key_id: str, session: AdminSession) -> Response:
    try:
        revoked = await run_in_threadpool(tagloop_of(request).keys.revoke, access_key_id[:40])
    except SAID as exc:
        return await _keys_page(request, session, error=exc.message, status=_status(exc))
    return see_other(f"/admin/keys?revoked={revoked['access_key_id']}")


# ---- users ---------------------------------------------------------------------------------
async def _admin_page(
    request: Request, session: WebSession, error: str, sent: dict[str, str], status: int
) -> Response:
    users = await run_in_threadpool(tagloop_of(request).users.list)
    return await page(
        request,
        "admin.html",
        "Admin",
        status=status,
        session=session,
        active="admin",
        users=users,
        roles=ROLES,
        c2_error=error,
        c2_sent=sent,
    )


@router.post("/admin/users")
async def user_create(request: Request, session: AdminSession) -> Response:
    form = await request.form()
    sent = {"name": _text(form, "name", 64), "role": _text(form, "role", 20)}
    try:
        await run_in_threadpool(
            tagloop_of(request).users.create, sent["name"], sent["role"], _text(form, "password", 2_000)
        )
    except SAID as exc:
        return await _admin_page(request, session, exc.message, sent, _status(exc))
    return see_other("/admin")


@router.post("/admin/roles/{name}")
async def user_role(request: Request, name: str, session: AdminSession) -> Response:
    form = await request.form()
    try:
        if name == session.user.name:
            raise AccessDenied("you cannot change your own role here: use tagloop users role")
        await run_in_threadpool(tagloop_of(request).users.set_role, name[:64], _text(form, "role", 20))
    except SAID as exc:
        return await _admin_page(
            request, session, exc.message, {"name": "", "role": "reviewer"}, _status(exc)
        )
    return see_other("/admin")
