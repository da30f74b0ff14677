"""The native API under /v1: thin routes over the services; every route declares its scope."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from tagloop.api.auth import AdminScope, ClassifyScope
from tagloop.api.direct import DirectRoute
from tagloop.api.errors import answer
from tagloop.api.schemas import (
    BatchClassifyResponse,
    ClassifyRequest,
    ClassifyResponse,
    EndpointCreate,
    EndpointUpdate,
    KeyCreate,
)
from tagloop.domain.limits import over_limit, utf8_size_over
from tagloop.domain.names import MAX_NAME, NAME_PATTERN
from tagloop.domain.predictions import Prediction
from tagloop.domain.records import JobStatus, Mode
from tagloop.errors import InvalidBody, LimitExceeded

router = APIRouter(prefix="/v1")
MULTI_CLASS = Mode.MULTI_CLASS  # a module constant: looking a member up on its enum is slower
# Path parameters are bounded like the bodies (schemas.py): names as names are checked,
# ids as tagloop makes them; anything else is 422 before a database sees it.
NamePath = Annotated[str, Path(max_length=MAX_NAME, pattern=NAME_PATTERN)]
IdPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
INLINE_DOCUMENTS = 8  # requests with this few texts are batched with the others of their event-loop turn


def _app(request: Request) -> Any:
    return request.app.state.tagloop


def _texts(body: bytes) -> tuple[list[str], bool, int | None]:
    """The texts of a classify body, whether it sent one ``text`` (else ``texts``), and the
    ``top`` it asked for.

    Parsed by hand rather than by a pydantic model: this is the hot path, and the schema
    (``ClassifyRequest``) is still what the OpenAPI document shows.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"body: not valid JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise InvalidBody("body: send a JSON object with `text` or `texts`")
    text, texts, top = payload.get("text"), payload.get("texts"), payload.get("top")
    if top is not None and (type(top) is not int or top < 0):
        raise InvalidBody("body.top: must be a whole number, 0 or more (0: every class)")
    if (text is None) == (texts is None):
        raise InvalidBody("body: send exactly one of `text` or `texts`")
    if text is not None:
        if not isinstance(text, str):
            raise InvalidBody("body.text: must be a string")
        return [text], True, top
    if not isinstance(texts, list) or not all(isinstance(item, str) for item in texts):
        raise InvalidBody("body.texts: must be a list of strings")
    return texts, False, top


def _check_limits(texts: list[str], settings: Any) -> None:
    if len(texts) > settings.max_classify_documents:
        raise LimitExceeded(
            over_limit(
                f"{len(texts):,} texts in one call", settings.max_classify_documents, "max_classify_documents"
            )
        )
    limit = settings.max_classify_bytes
    for text in texts:
        if (size := utf8_size_over(text, limit)) is not None:
            raise LimitExceeded(over_limit(f"text is {size:,} bytes", limit, "max_classify_bytes"))


def _classification(prediction: Prediction, prediction_id: str | None) -> dict[str, Any]:
    """One text's answer in the native shape: its ``classes`` (multi-class) or ``labels``
    (multi-label) as ``{name, score}``, best first, with the prediction's id; or its ``error``."""
    labels, scores, mode, error = prediction
    if error is not None:
        # the native error type, as the app's error handler names it (api/errors.py)
        return {"error": {"type": answer(error).type, "message": error.message}}
    # zip without strict=: the record's lists are built together, and the keyword is slow
    entries = [{"name": name, "score": score} for name, score in zip(labels, scores)]  # noqa: B905
    return {"classes" if mode is MULTI_CLASS else "labels": entries, "prediction_id": prediction_id}


CLASSIFY_DOCS = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ClassifyRequest.model_json_schema()}},
    }
}


async def classify(name: str, request: Request, _: ClassifyScope) -> Response:
    """Classify one document (`text`) or up to the batch limit (`texts`) with the endpoint's model."""
    tagloop = _app(request)
    texts, single, asked = _texts(await request.body())
    _check_limits(texts, tagloop.settings)
    serving = tagloop.endpoints.cached(name) or await run_in_threadpool(tagloop.endpoints.serving, name)
    counter = request.app.state.metrics.predicted
    top = tagloop.predictions.answer_top(serving.model, asked)

    def shaped(predictions: list[Prediction]) -> list[dict[str, Any]]:
        record = tagloop.prediction_log.record
        output = []
        for text, prediction in zip(texts, predictions, strict=True):
            prediction_id = None
            if prediction.error is None:
                prediction_id = record(name, serving.version_id, text, prediction)
                if prediction.labels:
                    counter(name, prediction.labels[0])
            output.append(_classification(prediction, prediction_id))
        return output

    if len(texts) <= INLINE_DOCUMENTS:  # scored with the other small requests of this turn
        output = shaped(await request.app.state.coalescer(serving.model, texts, top))
    else:
        request.app.state.metrics.scored_together.observe(len(texts))
        output = await run_in_threadpool(
            lambda: shaped(list(tagloop.predictions.classify(serving.model, texts, top)))
        )
    head = {"model_version": serving.version, "endpoint": name}
    body = head | output[0] if single else head | {"results": output}
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


router.add_api_route(
    "/endpoints/{name}/classify",
    classify,
    methods=["POST"],
    response_model=ClassifyResponse | BatchClassifyResponse,
    openapi_extra=CLASSIFY_DOCS,
    route_class_override=DirectRoute,  # the hot path: no per-request dependency resolution
)


@router.get("/endpoints")
def list_endpoints(request: Request, _: AdminScope) -> list[dict[str, Any]]:
    return _app(request).endpoints.list()


@router.post("/endpoints", status_code=201)
def create_endpoint(body: EndpointCreate, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).endpoints.create(
        body.name, body.classifier, body.version, body.desired_inference_units
    )


@router.get("/endpoints/{name}")
def show_endpoint(name: NamePath, request: Request, _: ClassifyScope) -> dict[str, Any]:
    return _app(request).endpoints.show(name)


@router.patch("/endpoints/{name}")
def update_endpoint(name: NamePath, body: EndpointUpdate, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).endpoints.update(name, body.version, body.desired_inference_units)


@router.delete("/endpoints/{name}", status_code=204)
def delete_endpoint(name: NamePath, request: Request, _: AdminScope) -> None:
    _app(request).endpoints.delete(name)


@router.get("/classifiers")
def list_classifiers(request: Request, _: AdminScope) -> list[dict[str, Any]]:
    return _app(request).catalog.classifiers()


@router.get("/classifiers/{name}/versions")
def list_versions(name: NamePath, request: Request, _: AdminScope) -> list[dict[str, Any]]:
    return _app(request).catalog.versions(name)


@router.get("/classifiers/{name}/versions/{version}")
def show_version(name: NamePath, version: NamePath, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).catalog.version(name, version)


@router.get("/jobs")
def list_jobs(
    request: Request,
    _: AdminScope,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return _app(request).jobs.list(limit, status.value if status else None)


@router.get("/jobs/{job_id}")
def show_job(job_id: IdPath, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).jobs.show(job_id)


@router.post("/jobs/{job_id}/stop")
def stop_job(job_id: IdPath, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).jobs.stop(job_id)


@router.get("/keys")
def list_keys(request: Request, _: AdminScope) -> list[dict[str, Any]]:
    return _app(request).keys.list()


@router.post("/keys", status_code=201)
def create_key(body: KeyCreate, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).keys.create(body.name, body.scope)


@router.delete("/keys/{access_key_id}")
def revoke_key(access_key_id: IdPath, request: Request, _: AdminScope) -> dict[str, Any]:
    return _app(request).keys.revoke(access_key_id)


@router.get("/predictions")
def list_predictions(
    request: Request,
    _: AdminScope,
    endpoint: Annotated[str | None, Query(max_length=MAX_NAME, pattern=NAME_PATTERN)] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="2026-11-30, 2026-11-30T14:00:00Z, or 30m, 24h, 7d back")
    ] = None,
    label: Annotated[
        str | None, Query(max_length=5_000, description="Only those whose best label is this.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the page before.")
    ] = None,
) -> dict[str, Any]:
    """Logged predictions, newest first, a page at a time: id, endpoint, classifier and version,
    when, best label and score, the classes (or labels) answered, and the text (null when
    TAGLOOP_LOG_PREDICTION_TEXT is off)."""
    items, next_cursor = _app(request).prediction_history.page(endpoint, since, label, limit, cursor)
    return {"predictions": items, "next_cursor": next_cursor}
