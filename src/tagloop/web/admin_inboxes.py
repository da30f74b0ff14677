"""The admin page of inboxes (``/admin/inboxes``): what each watched folder or S3 prefix is
doing, without a shell on the server.

Every inbox with its classifier, URL, import profile, train and deploy policies, whether it is
enabled, its files by state, its last error, and its newest files (state, version, the
deployment's outcome and reason, where the file went, why it failed): what
``InboxService.status`` gives, as ``tagloop inbox status`` prints it. Admins enable or disable
an inbox (a disabled one is not scanned; its files stay) and ``Scan now`` looks at one inbox
at once, as ``tagloop inbox scan NAME`` does: new files are recorded, complete ones claimed and
their jobs queued (the server's job workers run them). Adding and removing inboxes stay with
the CLI and ``/v1/inboxes`` (an inbox's URL is checked against the allowed data locations
there); the empty page says how.

A done change answers with a redirect to the page saying what was done; a refused one (an
inbox removed meanwhile) is said on the page with its status.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tagloop.app import Tagloop
from tagloop.domain.inbox import STATES
from tagloop.domain.names import check_name
from tagloop.errors import InvalidRequest
from tagloop.web.admin_console import SAID, AdminSession, _status
from tagloop.web.pages import see_other
from tagloop.web.render import NoticePage
from tagloop.web.security import tagloop_of

router = APIRouter(include_in_schema=False)
RECENT_FILES = 10
"""Newest files listed per inbox (``tagloop inbox status NAME`` lists more)."""
ACTIONS = ("enable", "disable", "scan")


def _inboxes(tagloop: Tagloop) -> list[dict[str, Any]]:
    """Every inbox with its newest files; one removed between the two reads is left out."""
    found = []
    for summary in tagloop.inbox.list():
        try:
            found.append(tagloop.inbox.status(summary["name"], limit=RECENT_FILES))
        except SAID:
            continue
    return found


INBOXES = NoticePage(
    "c2_inboxes.html",
    "Inboxes",
    "inboxes",
    lambda tagloop: {"inboxes": _inboxes(tagloop), "states": STATES, "recent": RECENT_FILES},
)


def _notice(done: str, name: str, seen: int, claimed: int, failed: bool) -> str | None:
    """What the redirect after a change says (from its query: nothing is stored)."""
    if not name or done not in ("enabled", "disabled", "scanned"):
        return None
    name = name[:63]
    if done != "scanned":
        more = (
            " it is scanned again from now on" if done == "enabled" else " its files stay, nothing is scanned"
        )
        return f"Inbox {name} is {done}:{more}."
    if failed:
        return f"Inbox {name} was scanned but could not be listed: see its last error."
    return (
        f"Inbox {name} scanned: {seen} file{'s' if seen != 1 else ''} waiting to be complete, "
        f"{claimed} picked up (their jobs are queued)."
    )


@router.get("/admin/inboxes")
async def inboxes_page(
    request: Request,
    session: AdminSession,
    done: str = "",
    name: str = "",
    seen: int = 0,
    claimed: int = 0,
    failed: bool = False,
) -> Response:
    return await INBOXES.answer(request, session, notice=_notice(done, name, seen, claimed, failed))


@router.post("/admin/inboxes/{name}/{action}")
async def inbox_change(request: Request, name: str, action: str, session: AdminSession) -> Response:
    """``enable`` / ``disable`` the inbox, or ``scan`` it once now."""
    inbox = tagloop_of(request).inbox
    try:
        check_name("inbox", name)
        if action not in ACTIONS:
            raise InvalidRequest(f"no action {action[:40]!r}: one of {', '.join(ACTIONS)}")
        if action == "scan":
            result = (await run_in_threadpool(inbox.scan, name))["inboxes"][0]
            query = {
                "done": "scanned",
                "name": name,
                "seen": len(result["seen"]),
                "claimed": len(result["claimed"]),
            }
            if result["error"]:
                query["failed"] = "true"
            return see_other(f"/admin/inboxes?{urlencode(query)}")
        await run_in_threadpool(inbox.set_enabled, name, action == "enable")
    except SAID as exc:
        status = 404 if isinstance(exc, InvalidRequest) and action not in ACTIONS else _status(exc)
        return await INBOXES.answer(request, session, error=exc.message, status=status)
    return see_other(f"/admin/inboxes?{urlencode({'done': action + 'd', 'name': name})}")
