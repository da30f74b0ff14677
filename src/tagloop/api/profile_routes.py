"""Import profiles under ``/v1``: thin routes over ``services/profiles.py``. Scope ``admin``
throughout: a profile decides what every later import of the classifier reads, and a database
URL or a source file given here is a location the server opens, so it must be one the operator
allowed (``TAGLOOP_ALLOWED_DATABASE_URLS``, ``TAGLOOP_ALLOWED_DATA_URLS``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from tagloop.api.auth import AdminScope
from tagloop.api.profile_schemas import ProfileBody, TryBody
from tagloop.api.state import TagloopDep
from tagloop.domain.names import MAX_NAME, NAME_PATTERN

router = APIRouter(prefix="/v1", tags=["profiles"])
NamePath = Annotated[str, Path(max_length=MAX_NAME, pattern=NAME_PATTERN)]


@router.get("/classifiers/{name}/profiles")
def list_profiles(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """The classifier's import profiles (a database password is never shown)."""
    return {"profiles": tagloop.profiles.list(name)}


@router.put("/classifiers/{name}/profiles/{profile}")
def put_profile(
    name: NamePath,
    profile: NamePath,
    body: ProfileBody,
    tagloop: TagloopDep,
    _: AdminScope,
    response: Response,
) -> dict[str, Any]:
    """Create or replace an import profile (201 when created); 400 naming the field that is wrong,
    or a database or file outside the allowed locations."""
    saved = tagloop.profiles.put(name, profile, body.model_dump(exclude_none=True), from_network=True)
    response.status_code = 201 if saved["created"] else 200
    return saved


@router.get("/classifiers/{name}/profiles/{profile}")
def get_profile(name: NamePath, profile: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    return tagloop.profiles.show(name, profile)


@router.delete("/classifiers/{name}/profiles/{profile}", status_code=204)
def delete_profile(name: NamePath, profile: NamePath, tagloop: TagloopDep, _: AdminScope) -> None:
    tagloop.profiles.delete(name, profile)


@router.post("/classifiers/{name}/profiles/{profile}/try")
def try_profile(
    name: NamePath, profile: NamePath, body: TryBody, tagloop: TagloopDep, _: AdminScope
) -> dict[str, Any]:
    """Read a source through the profile without importing it: sample rows, counts per label,
    rejected rows with member and line. The source must be in an allowed data location."""
    return tagloop.profiles.preview(name, profile, body.source, body.rows, body.scan, from_network=True)
