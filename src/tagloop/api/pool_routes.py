"""The unlabelled pool and active-learning picks under ``/v1``: thin routes over
``services/pool.py`` and ``services/review_fill.py``. Scope ``admin`` throughout (the pool
holds texts, and a fill changes every reviewer's queue). An endpoint's ``pool_rate`` is a field
of ``PATCH /v1/endpoints/{name}`` (api/v1.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from tagloop.api.auth import AdminScope
from tagloop.api.pool_schemas import FillRequest, PoolAdd
from tagloop.api.state import TagloopDep
from tagloop.domain.formats import FormatSpec
from tagloop.domain.names import MAX_NAME, NAME_PATTERN

router = APIRouter(prefix="/v1", tags=["pool"])
NamePath = Annotated[str, Path(max_length=MAX_NAME, pattern=NAME_PATTERN)]


@router.post("/classifiers/{name}/pool")
def add_to_pool(name: NamePath, body: PoolAdd, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Add texts to the classifier's pool: how many were added, which positions (or file lines)
    were duplicates of pooled or verified texts or of an earlier one, which were rejected and why."""
    if body.source is not None:
        spec = FormatSpec.infer(body.source, body.format, tuple(body.text_columns or ()), body.label_column)
        return tagloop.pool.add(name, body.source, spec, keep_labels=body.keep_labels, from_network=True)
    documents = [
        doc if isinstance(doc, str) else doc.model_dump(exclude_none=True) for doc in body.documents or []
    ]
    return tagloop.pool.add_documents(name, documents, keep_labels=body.keep_labels)


@router.get("/classifiers/{name}/pool")
def list_pool(
    name: NamePath,
    tagloop: TagloopDep,
    _: AdminScope,
    picked: Annotated[bool | None, Query(description="Only picked (true) or waiting (false) ones.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        int | None, Query(ge=0, le=2**62, description="`next_after` of the page before.")
    ] = None,
) -> dict[str, Any]:
    """The pool's figures (waiting, picked, by origin) and its documents, oldest first, a page
    at a time."""
    page = tagloop.pool.list(name, picked, limit, after)
    return page | {"pool": tagloop.pool.count(name)}


@router.delete("/classifiers/{name}/pool")
def clear_pool(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Delete the documents waiting in the pool (picked ones stay with their review tasks)."""
    return tagloop.pool.clear(name)


@router.post("/classifiers/{name}/review/fill")
def fill_review(
    name: NamePath, tagloop: TagloopDep, _: AdminScope, body: FillRequest | None = None
) -> dict[str, Any]:
    """Put the pool documents the strategy finds most worth labelling in the review queue (reason
    `active_learning`, priority by rank); 400 for an unknown strategy or an empty pool, 503 when
    the classifier has no trained version."""
    body = body or FillRequest()
    return tagloop.review_fill.fill(name, body.strategy, body.count, body.required)
