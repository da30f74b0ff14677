"""Inboxes under ``/v1``: thin routes over ``services/inbox.py``. Scope ``admin`` throughout:
an inbox reads and moves the files of a folder or bucket and deploys what they train. Its URL
must lie in an allowed data location (``DataLocations``), checked by the service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from tagloop.api.auth import AdminScope
from tagloop.api.inbox_schemas import InboxCreate, InboxUpdate
from tagloop.api.state import TagloopDep
from tagloop.domain.names import MAX_NAME, NAME_PATTERN
from tagloop.domain.records import Mode

router = APIRouter(prefix="/v1", tags=["inboxes"])
NamePath = Annotated[str, Path(max_length=MAX_NAME, pattern=NAME_PATTERN)]
State = Literal["seen", "claimed", "training", "deploying", "processed", "failed"]


@router.get("/inboxes")
def list_inboxes(tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Every inbox with its files by state and its last error."""
    return {"inboxes": tagloop.inbox.list()}


@router.post("/inboxes", status_code=201)
def add_inbox(body: InboxCreate, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Watch a folder or S3 prefix inside an allowed data location for a classifier."""
    return tagloop.inbox.add(
        body.classifier,
        body.url,
        body.name,
        body.profile,
        body.train,
        body.deploy,
        body.endpoint,
        Mode(body.mode),
        from_network=True,
    )


@router.get("/inboxes/{name}")
def inbox_status(
    name: NamePath,
    tagloop: TagloopDep,
    _: AdminScope,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest files listed.")] = 50,
    state: Annotated[State | None, Query(description="Only files in this state.")] = None,
) -> dict[str, Any]:
    """The inbox and its newest files: state, version, endpoint, where each went, its error."""
    return tagloop.inbox.status(name, limit, state)


@router.patch("/inboxes/{name}")
def update_inbox(name: NamePath, body: InboxUpdate, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Enable or disable the inbox."""
    return tagloop.inbox.set_enabled(name, body.enabled)


@router.post("/inboxes/{name}/scan")
def scan_inbox(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Look at the inbox now: complete files are picked up (their jobs run on the workers)."""
    return tagloop.inbox.scan(name)["inboxes"][0]


@router.delete("/inboxes/{name}")
def remove_inbox(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Stop watching (the folder and its files stay); 409 while a file is in work."""
    return tagloop.inbox.remove(name)
