"""The native API under /v1: thin routes over the services; every route declares its scope.

Classify (``POST /v1/endpoints/{name}/classify``) and invoke (``POST
/v1/endpoints/{name}/invoke``) also take requests signed with AWS Signature V4 for
``execute-api`` by a tagloop key, and ``{"Text": ...}`` as well as ``{"text": ...}``, so a
client written for an API Gateway (IAM auth) in front of a Lambda that calls Comprehend's
ClassifyDocument works unchanged. Invoke answers as that stack does: ``{"statusCode": 200,
"body": [{"Name": ..., "Score": ...}, ...]}`` (Comprehend's ``Classes``, or ``Labels`` for a
multi-label model), and every error in the same envelope (:func:`invoke_error`).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from tagloop.api.auth import AdminScope, ClassifyScope, ReviewScope, SignedClassifyScope
from tagloop.api.direct import DirectRoute
from tagloop.api.errors import answer
from tagloop.api.schemas import (
    BatchClassifyResponse,
    ClassifyRequest,
    ClassifyResponse,
    EndpointCreate,
    EndpointUpdate,
    FeedbackRequest,
    FeedbackResponse,
    InvokeRequest,
    InvokeResponse,
    KeyCreate,
    RoutingSettings,
    RoutingView,
)
from tagloop.api.state import TagloopDep, coalescer_of, metrics_of, serving_of, tagloop_of
from tagloop.app import Tagloop
from tagloop.domain.comprehend import result as comprehend_result
from tagloop.domain.limits import over_limit, utf8_size_over
from tagloop.domain.names import MAX_NAME, NAME_PATTERN
from tagloop.domain.predictions import Prediction
from tagloop.domain.records import JobStatus, Mode
from tagloop.domain.review import NewTask
from tagloop.domain.routing import decide
from tagloop.errors import InvalidBody, LimitExceeded, MethodNotAllowed, TagloopError
from tagloop.services.feedback import Verdict
from tagloop.services.monitoring import MAX_DAYS
from tagloop.services.routing import NOT_ROUTED, draw, review_field, routed_task
from tagloop.settings import Settings

router = APIRouter(prefix="/v1")
MULTI_CLASS = Mode.MULTI_CLASS  # a module constant: looking a member up on its enum is slower
# Path parameters are bounded like the bodies (schemas.py): names as names are checked,
# ids as tagloop makes them; anything else is 422 before a database sees it.
NamePath = Annotated[str, Path(max_length=MAX_NAME, pattern=NAME_PATTERN)]
IdPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
INLINE_DOCUMENTS = 8  # requests with this few texts are batched with the others of their event-loop turn
PREDICTION_ID_HEADER = "x-tagloop-prediction-id"  # invoke's answer has no room for it in its body
REVIEW_TASK_HEADER = "x-tagloop-review-task-id"  # nor for the review task of a routed prediction
REVIEW_REASON_HEADER = "x-tagloop-review-reason"


def _app(request: Request) -> Tagloop:
    return tagloop_of(request)


def _payload(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"body: not valid JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise InvalidBody("body: send a JSON object with `text` or `texts`")
    return payload


def _one_text(payload: dict[str, Any]) -> str | None:
    """The body's one text: ``text``, or ``Text`` as Comprehend and the AWS samples spell it."""
    text = payload.get("text")
    if text is None:
        text = payload.get("Text")
    elif "Text" in payload:
        raise InvalidBody("body: send one of `text` or `Text`, not both")
    if text is not None and not isinstance(text, str):
        raise InvalidBody("body.text: must be a string")
    return text


def _texts(body: bytes) -> tuple[list[str], bool, int | None]:
    """The texts of a classify body, whether it sent one ``text`` (else ``texts``), and the
    ``top`` it asked for.

    Parsed by hand rather than by a pydantic model: this is the hot path, and the schema
    (``ClassifyRequest``) is still what the OpenAPI document shows.
    """
    payload = _payload(body)
    texts, top = payload.get("texts"), payload.get("top")
    text = _one_text(payload)
    if top is not None and (type(top) is not int or top < 0):
        raise InvalidBody("body.top: must be a whole number, 0 or more (0: every class)")
    if (text is None) == (texts is None):
        raise InvalidBody("body: send exactly one of `text` (or `Text`) or `texts`")
    if text is not None:
        return [text], True, top
    if not isinstance(texts, list) or not all(isinstance(item, str) for item in texts):
        raise InvalidBody("body.texts: must be a list of strings")
    return texts, False, top


def _check_limits(texts: list[str], settings: Settings) -> None:
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


async def classify(name: str, request: Request, _: SignedClassifyScope) -> Response:
    """Classify one document (`text`, or `Text`) or up to the batch limit (`texts`) with the
    endpoint's model. A single text that cannot be classified (empty, say) is refused with the
    reason (400); with `texts`, each such text gets its `error` in its place in `results`.

    When the endpoint has an active routing policy, each result says whether it went to human
    review: `"review": {"routed": true, "task_id": ..., "reason": ...}` (answered once the
    task is kept: in the server's journal, committed to the database a moment later) or
    `{"routed": false}`.

    Authorization: `Bearer <secret>`, or AWS Signature V4 for the service `execute-api` by a
    tagloop key (as clients of an API Gateway with IAM auth sign)."""
    tagloop = _app(request)
    texts, single, asked = _texts(await request.body())
    _check_limits(texts, tagloop.settings)
    serving = await serving_of(tagloop, name)
    metrics = metrics_of(request)
    counter = metrics.predicted
    top = tagloop.predictions.answer_top(serving.model, asked)

    policy = serving.routing
    routed: list[tuple[int, NewTask]] = []

    def shaped(predictions: list[Prediction]) -> list[dict[str, Any]]:
        record = tagloop.prediction_log.record
        output: list[dict[str, Any]] = []
        for text, prediction in zip(texts, predictions, strict=True):
            prediction_id = None
            if prediction.error is None:
                prediction_id = record(name, serving.version_id, text, prediction)
                if prediction.labels:
                    counter(name, prediction.labels[0])
            entry = _classification(prediction, prediction_id)
            if policy is not None and prediction.error is None:
                entry["review"] = NOT_ROUTED
                reason = decide(policy, prediction, draw())
                if reason is not None:
                    routed.append(
                        (len(output), routed_task(serving, policy, reason, text, prediction, prediction_id))
                    )
            output.append(entry)
        return output

    if len(texts) <= INLINE_DOCUMENTS:  # scored with the other small requests of this turn
        predictions = await coalescer_of(request)(serving.model, texts, top)
        if single and predictions[0].error is not None:
            raise predictions[0].error  # one text: the call fails with its reason (400, 413)
        output = shaped(predictions)
    else:
        metrics.scored_together.observe(len(texts))
        output = await run_in_threadpool(
            lambda: shaped(list(tagloop.predictions.classify(serving.model, texts, top)))
        )
    if routed:  # answered once their tasks are journalled (or committed): services/routing.py
        stored = await tagloop.review_tasks.stored([task for _, task in routed])
        for index, task in routed:
            output[index]["review"] = review_field(task, stored)
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


async def invoke(name: str, request: Request, _: SignedClassifyScope) -> Response:
    """Classify one `{"Text": ...}` and answer as an API Gateway + Lambda stack that calls
    Comprehend's ClassifyDocument does: `{"statusCode": 200, "body": [{"Name", "Score"}, ...]}`,
    the body being Comprehend's `Classes` (the best 3), or `Labels` for a multi-label model.
    Errors come in the same envelope, `{"statusCode": 4xx, "body": {"type", "message"}}`, with
    the HTTP status equal to `statusCode`. The prediction's id is in the
    `X-Tagloop-Prediction-Id` header; a prediction routed to human review (the endpoint's
    routing policy) has `X-Tagloop-Review-Task-Id` and `X-Tagloop-Review-Reason` as well.

    Authorization: AWS Signature V4 for the service `execute-api` by a tagloop key (what the
    AWS samples' clients send), or `Bearer <secret>`."""
    tagloop = _app(request)
    text = _one_text(_payload(await request.body()))
    if text is None:
        raise InvalidBody("body: send a JSON object with `Text`")
    _check_limits([text], tagloop.settings)
    serving = await serving_of(tagloop, name)
    top = tagloop.predictions.answer_top(serving.model)  # Comprehend's number of classes
    (prediction,) = await coalescer_of(request)(serving.model, [text], top)
    if prediction.error is not None:
        raise prediction.error
    result = comprehend_result(prediction)
    prediction_id = tagloop.prediction_log.record(name, serving.version_id, text, prediction, result)
    if prediction.labels:
        metrics_of(request).predicted(name, prediction.labels[0])
    (entries,) = result.values()  # the list under Classes (or Labels)
    headers = {PREDICTION_ID_HEADER: prediction_id} if prediction_id else {}
    policy = serving.routing
    if policy is not None and (reason := decide(policy, prediction, draw())) is not None:
        task = routed_task(serving, policy, reason, text, prediction, prediction_id)
        if await tagloop.review_tasks.stored([task]):  # the headers say routed once it is kept
            headers |= {REVIEW_TASK_HEADER: str(task.id), REVIEW_REASON_HEADER: task.reason}
    return Response(
        orjson.dumps({"statusCode": 200, "body": entries}), media_type="application/json", headers=headers
    )


router.add_api_route(
    "/endpoints/{name}/invoke",
    invoke,
    methods=["POST"],
    response_model=InvokeResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": InvokeRequest.model_json_schema()}},
        }
    },
    route_class_override=DirectRoute,
)


def is_invoke(scope: Scope) -> bool:
    """Whether a request is for the invoke route, whose errors come in its own envelope."""
    path: str = scope.get("path", "")
    return path.startswith("/v1/endpoints/") and path.endswith("/invoke")


def invoke_error(error: TagloopError) -> Response:
    """``error`` as the invoke route answers it: ``{"statusCode": S, "body": {"type", "message"}}``
    with HTTP status S (the native API's status for the error)."""
    row = answer(error)
    headers = {"Allow": error.allowed} if isinstance(error, MethodNotAllowed) and error.allowed else None
    envelope = {"statusCode": row.status, "body": {"type": row.type, "message": error.message}}
    return Response(
        orjson.dumps(envelope), status_code=row.status, media_type="application/json", headers=headers
    )


@router.get("/endpoints")
def list_endpoints(tagloop: TagloopDep, _: AdminScope) -> list[dict[str, Any]]:
    return tagloop.endpoints.list()


@router.post("/endpoints", status_code=201)
def create_endpoint(body: EndpointCreate, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    return tagloop.endpoints.create(body.name, body.classifier, body.version, body.desired_inference_units)


@router.get("/endpoints/{name}")
def show_endpoint(name: NamePath, tagloop: TagloopDep, _: ClassifyScope) -> dict[str, Any]:
    return tagloop.endpoints.show(name)


@router.patch("/endpoints/{name}")
def update_endpoint(
    name: NamePath, body: EndpointUpdate, tagloop: TagloopDep, _: AdminScope
) -> dict[str, Any]:
    return tagloop.endpoints.update(name, body.version, body.desired_inference_units)


@router.delete("/endpoints/{name}", status_code=204)
def delete_endpoint(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> None:
    tagloop.endpoints.delete(name)


@router.get("/endpoints/{name}/routing", response_model=RoutingView)
def show_routing(name: NamePath, tagloop: TagloopDep, _: ReviewScope) -> dict[str, Any]:
    """The endpoint's review routing policy (scope `review`: reviewers see why tasks come)."""
    return tagloop.endpoints.routing(name)


@router.put("/endpoints/{name}/routing", response_model=RoutingView)
def set_routing(name: NamePath, body: RoutingSettings, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    """Replace the endpoint's review routing policy (settings left out take their defaults: `{}`
    turns routing off). Every server process follows it within a second."""
    return tagloop.endpoints.set_routing(name, body.model_dump(exclude_none=True))


@router.get("/endpoints/{name}/monitor")
def monitor_endpoint(
    name: NamePath,
    tagloop: TagloopDep,
    _: ClassifyScope,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="UTC days, today included.")] = 7,
) -> dict[str, Any]:
    """Drift and production figures of the endpoint per UTC day, oldest first (as `tagloop
    monitor ENDPOINT --json`): predictions, predicted labels, best-score histogram, PSI and
    chi-squared against the training data and the day before, routed share, reviewers'
    agreement, drift flag; counts only, never a text. Scope `classify`, as reading the endpoint."""
    return tagloop.monitoring.report(name, days)


@router.get("/classifiers")
def list_classifiers(tagloop: TagloopDep, _: AdminScope) -> list[dict[str, Any]]:
    return tagloop.catalog.classifiers()


@router.get("/classifiers/{name}/versions")
def list_versions(name: NamePath, tagloop: TagloopDep, _: AdminScope) -> list[dict[str, Any]]:
    return tagloop.catalog.versions(name)


@router.get("/classifiers/{name}/versions/{version}")
def show_version(name: NamePath, version: NamePath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    return tagloop.catalog.version(name, version)


@router.get("/jobs")
def list_jobs(
    tagloop: TagloopDep,
    _: AdminScope,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return tagloop.jobs.list(limit, status.value if status else None)


@router.get("/jobs/{job_id}")
def show_job(job_id: IdPath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    return tagloop.jobs.show(job_id)


@router.post("/jobs/{job_id}/stop")
def stop_job(job_id: IdPath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    return tagloop.jobs.stop(job_id)


@router.get("/keys")
def list_keys(tagloop: TagloopDep, _: AdminScope) -> list[dict[str, Any]]:
    return tagloop.keys.list()


@router.post("/keys", status_code=201)
def create_key(body: KeyCreate, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    return tagloop.keys.create(body.name, body.scope)


@router.delete("/keys/{access_key_id}")
def revoke_key(access_key_id: IdPath, tagloop: TagloopDep, _: AdminScope) -> dict[str, Any]:
    return tagloop.keys.revoke(access_key_id)


@router.get("/predictions")
def list_predictions(
    tagloop: TagloopDep,
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
    items, next_cursor = tagloop.prediction_history.page(endpoint, since, label, limit, cursor)
    return {"predictions": items, "next_cursor": next_cursor}


@router.post("/feedback", status_code=201, response_model=FeedbackResponse)
def feedback(body: FeedbackRequest, tagloop: TagloopDep, _: ClassifyScope) -> dict[str, Any]:
    """End-user feedback → review tasks in the moderators' queue (reason `feedback`).

    On a logged prediction: `{"prediction_id": ..., "correct": false, "labels": [...],
    "comment": ...}` (an unknown or expired id is 404; with prediction logging or its texts off,
    400 naming the setting). On texts, as the seed workflow's feedback API sends them:
    `{"classifier": "news", "sentence": "..."}` or `{"classifier": "news", "sentences": [...]}`,
    each classified now with what the classifier serves. Answers the task ids (201)."""
    verdict = Verdict(body.correct, tuple(body.labels or ()), body.comment)
    if body.prediction_id is not None:
        return tagloop.feedback.on_prediction(body.prediction_id, verdict)
    texts = [body.sentence] if body.sentence is not None else list(body.sentences or [])
    return tagloop.feedback.on_texts(str(body.classifier), texts, verdict)
