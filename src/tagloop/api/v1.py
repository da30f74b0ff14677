"""The native API under /v1: thin routes over the services; every route declares its scope."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from tagloop.api.auth import AdminScope, ClassifyScope
from tagloop.api.schemas import (
    BatchClassifyResponse,
    Classification,
    ClassifyRequest,
    ClassifyResponse,
    EndpointCreate,
    EndpointUpdate,
    KeyCreate,
    Score,
)
from tagloop.errors import LimitExceeded

router = APIRouter(prefix="/v1")
INLINE_DOCUMENTS = 8  # classify this few in the event loop; more go to a worker thread


def _app(request: Request) -> Any:
    return request.app.state.tagloop


def _classification(result: dict[str, Any], prediction_id: str | None) -> Classification:
    if "Error" in result:
        return Classification(error={"type": result["Error"]["Code"], "message": result["Error"]["Message"]})
    scores = [
        Score(name=entry["Name"], score=entry["Score"]) for entry in result.get("Classes") or result["Labels"]
    ]
    if "Classes" in result:
        return Classification(classes=scores, prediction_id=prediction_id)
    return Classification(labels=scores, prediction_id=prediction_id)


@router.post("/endpoints/{name}/classify", response_model=ClassifyResponse | BatchClassifyResponse)
async def classify(name: str, body: ClassifyRequest, request: Request, _: ClassifyScope) -> Any:
    tagloop = _app(request)
    settings = tagloop.settings
    texts = [body.text] if body.text is not None else list(body.texts or [])
    if len(texts) > settings.max_classify_documents:
        raise LimitExceeded(
            f"{len(texts):,} texts in one call, over the limit of {settings.max_classify_documents:,} "
            "(setting TAGLOOP_MAX_CLASSIFY_DOCUMENTS)"
        )
    for text in texts:
        size = len(text.encode("utf-8"))
        if size > settings.max_classify_bytes:
            raise LimitExceeded(
                f"text is {size:,} bytes, over the limit of {settings.max_classify_bytes:,} "
                "(setting TAGLOOP_MAX_CLASSIFY_BYTES)"
            )
    serving = tagloop.endpoints.serving(name)

    def work() -> list[Classification]:
        results = list(tagloop.predictions.classify(serving.model, texts))
        metrics = request.app.state.metrics
        output = []
        for text, result in zip(texts, results, strict=True):
            prediction_id = None
            if "Error" not in result:
                prediction_id = tagloop.prediction_log.record(name, serving.version_id, text, result)
                entries = result.get("Classes") or result.get("Labels") or []
                if entries:
                    metrics.predictions.labels(name, entries[0]["Name"]).inc()
            output.append(_classification(result, prediction_id))
        return output

    output = work() if len(texts) <= INLINE_DOCUMENTS else await run_in_threadpool(work)
    if body.text is not None:
        return ClassifyResponse(model_version=serving.version, endpoint=name, **output[0].model_dump())
    return BatchClassifyResponse(model_version=serving.version, endpoint=name, results=output)


@router.get("/endpoints")
def list_endpoints(request: Request, _: AdminScope) -> list[dict[str, Any]]:
    return _app(request).endpoints.list()


@router.post("/endpoints", status_code=201)
def create_endpoint(body: EndpointCreate, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).endpoints.create(
        body.name, body.classifier, body.version, body.desired_inference_units
    )


@router.get("/endpoints/{name}")
def show_endpoint(name: str, request: Request, _: ClassifyScope) -> dict[str, Any]:
    return _app(request).endpoints.show(name)


@router.patch("/endpoints/{name}")
def update_endpoint(name: str, body: EndpointUpdate, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).endpoints.update(name, body.version, body.desired_inference_units)


@router.delete("/endpoints/{name}", status_code=204)
def delete_endpoint(name: str, request: Request, _: AdminScope) -> None:
    _app(request).endpoints.delete(name)


@router.get("/classifiers")
def list_classifiers(request: Request, _: AdminScope) -> list[dict[str, Any]]:
    return _app(request).catalog.classifiers()


@router.get("/classifiers/{name}/versions")
def list_versions(name: str, request: Request, _: AdminScope) -> list[dict[str, Any]]:
    return _app(request).catalog.versions(name)


@router.get("/classifiers/{name}/versions/{version}")
def show_version(name: str, version: str, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).catalog.version(name, version)


@router.get("/jobs")
def list_jobs(
    request: Request, _: AdminScope, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    return _app(request).jobs.list(limit, status)


@router.get("/jobs/{job_id}")
def show_job(job_id: str, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).jobs.show(job_id)


@router.post("/jobs/{job_id}/stop")
def stop_job(job_id: str, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).jobs.stop(job_id)


@router.get("/keys")
def list_keys(request: Request, _: AdminScope) -> list[dict[str, Any]]:
    return _app(request).keys.list()


@router.post("/keys", status_code=201)
def create_key(body: KeyCreate, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).keys.create(body.name, body.scope)


@router.delete("/keys/{access_key_id}")
def revoke_key(access_key_id: str, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).keys.revoke(access_key_id)
