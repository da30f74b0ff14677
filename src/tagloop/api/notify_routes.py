"""Notification channels and their delivery log under ``/v1``: thin routes over
``services/notify.py``. Scope ``admin`` throughout: a channel sends the server's events out.

A webhook URL given here makes the server send requests to it, so it must lie under one of
the operator's prefixes in TAGLOOP_NOTIFY_ALLOWED_TARGETS (e-mail: one of its ``@domain``s);
apprise channels (any host) are CLI-only. Secrets are answered once, at creation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from tagloop.api.auth import AdminScope
from tagloop.api.notify_schemas import ChannelCreate, ChannelPatch
from tagloop.api.state import TagloopDep
from tagloop.domain.names import MAX_NAME, NAME_PATTERN

router = APIRouter(prefix="/v1", tags=["notifications"])
NamePath = Annotated[str, Path(max_length=MAX_NAME, pattern=NAME_PATTERN)]
Status = Literal["pending", "sending", "delivered", "failed"]


@router.get("/channels")
def list_channels(tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Every channel (targets without their query string; never a secret)."""
    return {"channels": tagloop.notify.list()}


@router.post("/channels", status_code=201)
def create_channel(body: ChannelCreate, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Create a channel; it hears the events recorded from now on. 400 for a target outside
    TAGLOOP_NOTIFY_ALLOWED_TARGETS, 409 for a name in use."""
    return tagloop.notify.add(
        body.name,
        body.kind,
        body.target,
        body.events,
        body.classifier,
        body.secret,
        from_network=True,
    )


@router.get("/channels/{name}")
def show_channel(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    return tagloop.notify.show(name)


@router.patch("/channels/{name}")
def patch_channel(name: NamePath, body: ChannelPatch, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Pause (`enabled: false`: events meanwhile are skipped) or resume a channel."""
    return tagloop.notify.set_enabled(name, body.enabled)


@router.delete("/channels/{name}")
def delete_channel(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Remove a channel and its delivery log."""
    return tagloop.notify.remove(name)


@router.post("/channels/{name}/test")
def test_channel(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Send a test message now (one attempt); the delivery as recorded: `status` delivered or
    failed, with the receiver's answer in `response_status` / `error`."""
    return tagloop.notify.test(name)


@router.post("/channels/{name}/retry")
def retry_channel(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Queue the channel's failed deliveries again (sent at the next tick)."""
    return tagloop.notify.retry(name)


@router.get("/deliveries")
def list_deliveries(
    tagloop: TagloopDep,
    _: AdminScope,
    channel: Annotated[str | None, Query(max_length=MAX_NAME, pattern=NAME_PATTERN)] = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="Smallest `id` of the page before.")
    ] = None,
) -> dict[str, Any]:
    """The delivery log, newest first: status, attempts, the receiver's answer, next attempt."""
    return {"deliveries": tagloop.notify.deliveries(channel, status, limit, before)}
