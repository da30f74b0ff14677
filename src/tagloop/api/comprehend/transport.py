"""The Comprehend API's transport: the two protocols AWS SDKs speak to Comprehend, its
signatures and scopes, and its error shape.

- JSON 1.1: `POST /` with `X-Amz-Target: Comprehend_20171127.<Operation>` (boto3 today);
- Smithy RPC v2 CBOR: `POST /service/Comprehend_20171127/operation/<Operation>` with a CBOR
  body and `smithy-protocol: rpc-v2-cbor` (the protocol newer SDKs move AWS services to).

A request is decoded, authorized (AWS Signature V4 by a tagloop key, the key's scope checked
per operation), validated against Comprehend's own model (``input.py``) and handed to its
operation (``operations.py``); the answer is encoded in the request's protocol. Errors come
back in Comprehend's shape, ``{"__type": ..., "message": ...}`` with AWS's statuses, in the
request's protocol: the routes raise, and the app's exception handlers (``api/server.py``)
answer through :func:`aws_error` for every path :func:`protocol_of` knows.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import cbor2
import orjson
from cbor2 import CBORTag
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from tagloop.api.a2i import sagemaker
from tagloop.api.comprehend.input import validate
from tagloop.api.comprehend.operations import COROUTINES, OPERATIONS, ComprehendApi
from tagloop.api.direct import DirectRoute
from tagloop.api.errors import comprehend_error
from tagloop.api.sigv4 import verify
from tagloop.api.state import coalescer_of, tagloop_of
from tagloop.app import Tagloop
from tagloop.errors import AccessDenied, TagloopError, UnknownOperation, UnreadableBody

router = APIRouter(route_class=DirectRoute)  # hot: answered ahead of the app's stack
SERVICE = "Comprehend_20171127"
TARGET_PREFIX = f"{SERVICE}."
SIGNING_NAME = "comprehend"  # the service a SigV4 credential scope must name
TIMESTAMPS = frozenset(
    {
        "SubmitTime",
        "EndTime",
        "TrainingStartTime",
        "TrainingEndTime",
        "CreationTime",
        "LastModifiedTime",
        "LatestVersionCreatedAt",
    }
)
CONTENT_TYPE = "application/x-amz-json-1.1"


def _aws_response(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type=CONTENT_TYPE)


def protocol_of(scope: Scope) -> str | None:
    """The protocol of the Comprehend API a request's path belongs to (``"json"``, ``"cbor"``),
    ``None`` for the native API's paths: errors are answered in the door's own shape."""
    path = scope.get("path", "")
    if path == "/" and scope.get("method") == "POST":
        return "json"
    if path.startswith(f"/service/{SERVICE}/"):
        return "cbor"
    return None


def aws_error(exc: TagloopError, protocol: str = "json") -> Response:
    """``exc`` in Comprehend's shape (``__type``, ``message``; AWS's status), in ``protocol``."""
    payload, status = comprehend_error(exc)
    return _cbor_response(payload, status) if protocol == "cbor" else _aws_response(payload, status)


SCOPES = {"ClassifyDocument": "classify"}


def _authorize(tagloop: Tagloop, request: Request, operation: str, raw: bytes) -> str:
    """The caller's access key id ("" with authentication off), once its signature and
    scope are checked."""
    if not tagloop.settings.auth:
        return ""
    settings = tagloop.settings
    region = None if settings.aws_any_region else settings.aws_region
    headers = request.headers.items()  # repeated headers kept: SigV4 signs them joined
    principal = verify(tagloop.keys, request.method, str(request.url), headers, raw, (SIGNING_NAME,), region)
    scope = SCOPES.get(operation, "admin")
    if not principal.allows(scope):
        raise AccessDenied(f"this key's scope is {principal.scope!r}; {operation} needs {scope!r}")
    return principal.access_key_id


async def _call(request: Request, operation: str, body: dict[str, Any], caller: str) -> dict[str, Any]:
    """Run one operation: ClassifyDocument on the event loop (it goes to a worker thread only
    to resolve an endpoint this process does not have in memory); anything else, which may
    touch the database or read files, on a worker thread, at most once per ClientRequestToken
    of ``caller`` (services/request_tokens.py)."""
    coroutine = COROUTINES.get(operation)
    handler = OPERATIONS.get(operation)
    if coroutine is None and handler is None:
        raise UnknownOperation(f"{operation} is not supported")
    validate(operation, body)  # Comprehend's own model: types, required members, ranges, enums, patterns
    api = ComprehendApi(tagloop_of(request), coalescer_of(request))
    if coroutine is not None:
        return await coroutine(api, body)
    assert handler is not None
    run = functools.partial(handler, api, body)
    return await run_in_threadpool(api.tagloop.request_tokens.run, caller, operation, body, run)


@router.post("/", include_in_schema=False)
async def comprehend(request: Request) -> Response:
    """Every Comprehend operation in the JSON 1.1 protocol; SigV4, scope checked per operation."""
    tagloop = tagloop_of(request)
    target = request.headers.get("x-amz-target", "")
    if target.startswith(sagemaker.TARGET_PREFIX):  # the SageMaker control plane shares this door
        return await sagemaker.answer(request, target)
    if not target.startswith(TARGET_PREFIX):  # refused before its body is read
        raise UnknownOperation(f"unknown X-Amz-Target {target!r}")
    operation = target.removeprefix(TARGET_PREFIX)
    raw = await request.body()  # bounded, and read only after the credential's key (api/server.py)
    caller = _authorize(tagloop, request, operation, raw)
    try:
        body = orjson.loads(raw or b"{}")  # UTF-8 only, no NaN, no lone surrogates, nesting bounded
    except orjson.JSONDecodeError as exc:
        raise UnreadableBody(f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise UnreadableBody("request body must be a JSON object")
    return _aws_response(await _call(request, operation, body, caller))


@router.post(f"/service/{SERVICE}/operation/{{operation}}", include_in_schema=False)
async def comprehend_cbor(operation: str, request: Request) -> Response:
    """Every Comprehend operation in the Smithy RPC v2 CBOR protocol (newer AWS SDKs)."""
    tagloop = tagloop_of(request)
    raw = await request.body()  # bounded, and read only after the credential's key (api/server.py)
    caller = _authorize(tagloop, request, operation, raw)
    try:
        body = cbor2.loads(raw) if raw else {}
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise UnreadableBody(f"request body is not CBOR: {exc}") from exc
    if not isinstance(body, dict):
        raise UnreadableBody("request body must be a CBOR map")
    return _cbor_response(_tag_timestamps(await _call(request, operation, body, caller)))


def _cbor_response(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(
        cbor2.dumps(payload),
        status_code=status,
        media_type="application/cbor",
        headers={"smithy-protocol": "rpc-v2-cbor"},
    )


def _tag_timestamps(value: Any) -> Any:
    """Timestamps as CBOR epoch-based dates (tag 1), as the protocol encodes them."""
    if isinstance(value, dict):
        return {
            key: CBORTag(1, item) if key in TIMESTAMPS and isinstance(item, float) else _tag_timestamps(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_tag_timestamps(item) for item in value]
    return value
