"""``/console/classifiers``: every classifier at a glance; ``/console/classifiers/{c}``: its
versions with their metrics and endpoints, its data by origin, and (admins) promote and roll
back."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tagloop.domain.names import check_name
from tagloop.errors import InvalidRequest
from tagloop.web.console.common import AdminSession, ViewerSession, classifier_path, see_other
from tagloop.web.render import page
from tagloop.web.security import tagloop_of

router = APIRouter(include_in_schema=False)
NOTICES = {
    "promoted": "Promoted: following endpoints now serve it.",
    "unchanged": "It is the champion already: nothing changed.",
    "rolledback": "Rolled back: following endpoints serve the previous champion again.",
}


@router.get("/console")
async def console_home(session: ViewerSession) -> Response:
    return see_other("/console/classifiers")


@router.get("/console/classifiers")
async def classifiers_page(request: Request, session: ViewerSession) -> Response:
    cards = await run_in_threadpool(tagloop_of(request).overview.classifiers)
    return await page(
        request, "console/classifiers.html", "Classifiers", session=session, active="classifiers", cards=cards
    )


@router.get("/console/classifiers/{name}")
async def classifier_page(request: Request, name: str, session: ViewerSession, done: str = "") -> Response:
    check_name("classifier", name)
    detail = await run_in_threadpool(tagloop_of(request).overview.classifier, name)
    return await page(
        request,
        "console/classifier.html",
        name,
        session=session,
        active="classifiers",
        detail=detail,
        card=detail.card,
        notice=NOTICES.get(done),
    )


@router.post("/console/classifiers/{name}/promote")
async def promote(request: Request, name: str, session: AdminSession) -> Response:
    """Make the version named in the form the champion (following endpoints move with it)."""
    check_name("classifier", name)
    version = (await request.form()).get("version")
    if not isinstance(version, str) or not version:
        raise InvalidRequest("name the version to promote")
    result = await run_in_threadpool(tagloop_of(request).loops.promote, name, version[:63], "manual")
    return see_other(classifier_path(name) + ("?done=promoted" if result["changed"] else "?done=unchanged"))


@router.post("/console/classifiers/{name}/rollback")
async def rollback(request: Request, name: str, session: AdminSession) -> Response:
    """Promote the champion before the current one again."""
    check_name("classifier", name)
    await run_in_threadpool(tagloop_of(request).loops.rollback, name)
    return see_other(classifier_path(name) + "?done=rolledback")
