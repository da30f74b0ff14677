"""The Amazon Augmented AI runtime (``sagemaker-a2i-runtime``, rest-json): human loops.

``POST /human-loops`` (StartHumanLoop), ``GET /human-loops/{name}`` (DescribeHumanLoop),
``GET /human-loops?FlowDefinitionArn=...`` (ListHumanLoops), ``POST /human-loops/stop``
(StopHumanLoop), ``DELETE /human-loops/{name}`` (DeleteHumanLoop). Requests are signed with
AWS Signature V4 for the service ``sagemaker`` (or carry a Bearer secret) by a key of scope
``classify``: the application that classifies is the one that starts loops. A request's path,
query and body are gathered into one input, as botocore serialized it, and checked against
botocore's model of the API before an operation runs; errors in A2I's shape
(``api/a2i/errors.py``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from tagloop.api.a2i.sagemaker import epoch, page_request
from tagloop.api.auth import require
from tagloop.api.comprehend.input import service_model, validate
from tagloop.api.state import tagloop_of
from tagloop.domain.a2i import FLOW, A2iArns
from tagloop.errors import UnreadableBody
from tagloop.services.human_loops import HumanLoopService, Loop
from tagloop.services.keys import Principal

SERVICE = "sagemaker-a2i-runtime"
SIGNED_FOR = ("sagemaker",)
PREFIX = "/human-loops"
_INTEGER = re.compile(r"-?[0-9]{1,20}")

LoopScope = Annotated[Principal, Depends(require("classify", signed_for=SIGNED_FOR))]
router = APIRouter(prefix=PREFIX, include_in_schema=False)


def is_runtime(scope: Scope) -> bool:
    path = scope.get("path", "")
    return path == PREFIX or path.startswith(PREFIX + "/")


def _query_value(shape: Any, value: str) -> Any:
    """A query string value as the member's type (left as text when it is not one: the model's
    check then refuses it)."""
    if shape.type_name in ("integer", "long") and _INTEGER.fullmatch(value):
        return int(value)
    if shape.type_name == "timestamp":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


async def _input(request: Request, operation: str) -> dict[str, Any]:
    """The operation's input from the request's path, query and JSON body, validated."""
    shape = service_model(SERVICE).operation_model(operation).input_shape
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise UnreadableBody(f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise UnreadableBody("request body must be a JSON object")
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            body[name] = request.path_params.get(wire)
        elif location == "querystring":
            value = request.query_params.get(wire)
            body.pop(name, None)
            if value is not None:
                body[name] = _query_value(member, value)
    validate(operation, body, SERVICE)
    return body


def _answer(payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), media_type="application/json")


class _Runtime:
    def __init__(self, request: Request) -> None:
        tagloop = tagloop_of(request)
        self.loops: HumanLoopService = tagloop.human_loops
        self.arns = A2iArns(tagloop.settings.aws_region, tagloop.settings.aws_account_id)

    def flow_name(self, arn: str) -> str:
        return A2iArns.name_in(arn, FLOW, "FlowDefinitionArn")

    def describe(self, loop: Loop) -> dict[str, Any]:
        described: dict[str, Any] = {
            "CreationTime": epoch(loop.created_at),
            "HumanLoopStatus": loop.status,
            "HumanLoopName": loop.name,
            "HumanLoopArn": self.arns.loop(loop.name),
            "FlowDefinitionArn": self.arns.flow(loop.flow),
        }
        if loop.failure_reason:
            described["FailureReason"] = loop.failure_reason
        if loop.failure_code:
            described["FailureCode"] = loop.failure_code
        if loop.output_uri:
            described["HumanLoopOutput"] = {"OutputS3Uri": loop.output_uri}
        return described

    def summary(self, loop: Loop) -> dict[str, Any]:
        summary = {
            "HumanLoopName": loop.name,
            "HumanLoopStatus": loop.status,
            "CreationTime": epoch(loop.created_at),
            "FlowDefinitionArn": self.arns.flow(loop.flow),
        }
        return summary | ({"FailureReason": loop.failure_reason} if loop.failure_reason else {})


@router.post("")
async def start_human_loop(request: Request, _: LoopScope) -> Response:
    body = await _input(request, "StartHumanLoop")
    runtime = _Runtime(request)
    flow = runtime.flow_name(body["FlowDefinitionArn"])
    content = body["HumanLoopInput"]["InputContent"]
    loop = await run_in_threadpool(runtime.loops.start_loop, body["HumanLoopName"], flow, content)
    return _answer({"HumanLoopArn": runtime.arns.loop(loop.name)})


@router.get("")
async def list_human_loops(request: Request, _: LoopScope) -> Response:
    body = await _input(request, "ListHumanLoops")
    runtime = _Runtime(request)
    flow = runtime.flow_name(body["FlowDefinitionArn"])
    loops, token = await run_in_threadpool(runtime.loops.loops, flow, page_request(body))
    result: dict[str, Any] = {"HumanLoopSummaries": [runtime.summary(loop) for loop in loops]}
    return _answer(result | ({"NextToken": token} if token else {}))


@router.post("/stop")
async def stop_human_loop(request: Request, _: LoopScope) -> Response:
    body = await _input(request, "StopHumanLoop")
    await run_in_threadpool(_Runtime(request).loops.stop_loop, body["HumanLoopName"])
    return _answer({})


@router.get("/{HumanLoopName}")
async def describe_human_loop(request: Request, _: LoopScope) -> Response:
    body = await _input(request, "DescribeHumanLoop")
    runtime = _Runtime(request)
    loop = await run_in_threadpool(runtime.loops.loop, body["HumanLoopName"])
    return _answer(runtime.describe(loop))


@router.delete("/{HumanLoopName}")
async def delete_human_loop(request: Request, _: LoopScope) -> Response:
    body = await _input(request, "DeleteHumanLoop")
    await run_in_threadpool(_Runtime(request).loops.delete_loop, body["HumanLoopName"])
    return _answer({})
