"""The SageMaker control-plane operations A2I users call: worker task templates
(``CreateHumanTaskUi`` ...) and flow definitions (``CreateFlowDefinition`` ...).

JSON 1.1 on ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``, the same door as the
Comprehend API (its route hands these requests here by the target's prefix). Signed with
AWS Signature V4 for the service ``sagemaker`` by a tagloop key of scope ``admin``; inputs
are checked against botocore's model of SageMaker (``api/comprehend/input.py``) before an
operation runs; errors in SageMaker's shape (``api/a2i/errors.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from tagloop.api.auth import signer_principal
from tagloop.api.comprehend.input import validate
from tagloop.api.sigv4 import verify
from tagloop.api.state import tagloop_of
from tagloop.app import Tagloop
from tagloop.domain.a2i import TASK_UI, A2iArns
from tagloop.errors import AccessDenied, InvalidRequest, UnknownOperation, UnreadableBody
from tagloop.services.human_loops import Flow, FlowRequest, HumanLoopService, TaskUi
from tagloop.storage.human_loops import PageRequest

TARGET_PREFIX = "SageMaker."
SERVICE = "sagemaker"  # botocore's name and the SigV4 signing name
SIGNING_NAMES = ("sagemaker",)
CONTENT_TYPE = "application/x-amz-json-1.1"


def is_sagemaker(scope: Scope) -> bool:
    """Whether a request is for this door: ``POST /`` with a SageMaker target."""
    if scope.get("path") != "/" or scope.get("method") != "POST":
        return False
    target = next((value for name, value in scope.get("headers", ()) if name == b"x-amz-target"), b"")
    return target.startswith(TARGET_PREFIX.encode())


def epoch(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


def page_request(body: dict[str, Any]) -> PageRequest:
    """The page a List operation asks for (CreationTimeAfter/Before, SortOrder, NextToken, MaxResults)."""

    def moment(value: Any) -> datetime | None:
        if value is None:
            return None
        return value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)

    return PageRequest(
        after=moment(body.get("CreationTimeAfter")),
        before=moment(body.get("CreationTimeBefore")),
        ascending=body.get("SortOrder", "Descending") == "Ascending",
        token=body.get("NextToken") or None,
        limit=int(body.get("MaxResults") or 100),
    )


def _with_token(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    return result | ({"NextToken": token} if token else {})


class SageMakerApi:
    """One method per operation: the request body in, the response body out."""

    def __init__(self, tagloop: Tagloop) -> None:
        self.loops: HumanLoopService = tagloop.human_loops
        settings = tagloop.settings
        self.arns = A2iArns(settings.aws_region, settings.aws_account_id)

    def _task_ui_summary(self, ui: TaskUi) -> dict[str, Any]:
        return {
            "HumanTaskUiName": ui.name,
            "HumanTaskUiArn": self.arns.task_ui(ui.name),
            "CreationTime": epoch(ui.created_at),
        }

    def CreateHumanTaskUi(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - AWS operation names
        ui = self.loops.create_task_ui(
            body["HumanTaskUiName"], body["UiTemplate"]["Content"], body.get("Tags")
        )
        return {"HumanTaskUiArn": self.arns.task_ui(ui.name)}

    def DescribeHumanTaskUi(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        ui = self.loops.task_ui(body["HumanTaskUiName"])
        digest = hashlib.sha256(ui.content.encode()).hexdigest()
        return self._task_ui_summary(ui) | {
            "HumanTaskUiStatus": ui.status,
            "UiTemplate": {"ContentSha256": digest},
        }

    def DeleteHumanTaskUi(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.loops.delete_task_ui(body["HumanTaskUiName"])
        return {}

    def ListHumanTaskUis(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        uis, token = self.loops.task_uis(page_request(body))
        return _with_token({"HumanTaskUiSummaries": [self._task_ui_summary(ui) for ui in uis]}, token)

    def CreateFlowDefinition(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        config = body.get("HumanLoopConfig")
        if not isinstance(config, dict):
            raise InvalidRequest("HumanLoopConfig is required: tagloop runs loops of custom task types only")
        recorded = {
            key: body[key] for key in ("HumanLoopRequestSource", "HumanLoopActivationConfig") if key in body
        } | {
            "WorkteamArn": config.get("WorkteamArn"),
            "TaskKeywords": config.get("TaskKeywords"),
            "KmsKeyId": body["OutputConfig"].get("KmsKeyId"),
        }
        request = FlowRequest(
            name=body["FlowDefinitionName"],
            task_ui=A2iArns.name_in(config["HumanTaskUiArn"], TASK_UI, "HumanLoopConfig.HumanTaskUiArn"),
            title=config["TaskTitle"],
            description=config["TaskDescription"],
            task_count=config["TaskCount"],
            availability_seconds=config.get("TaskAvailabilityLifetimeInSeconds"),
            time_limit_seconds=config.get("TaskTimeLimitInSeconds"),
            output_path=body["OutputConfig"]["S3OutputPath"],
            role_arn=body.get("RoleArn"),
            tags=list(body.get("Tags") or []),
            config={key: value for key, value in recorded.items() if value is not None},
        )
        flow = self.loops.create_flow(request)
        return {"FlowDefinitionArn": self.arns.flow(flow.name)}

    def _flow_summary(self, flow: Flow) -> dict[str, Any]:
        return {
            "FlowDefinitionName": flow.name,
            "FlowDefinitionArn": self.arns.flow(flow.name),
            "FlowDefinitionStatus": flow.status,
            "CreationTime": epoch(flow.created_at),
        }

    def DescribeFlowDefinition(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        flow = self.loops.flow(body["FlowDefinitionName"])
        recorded = flow.config
        human_config = {
            "WorkteamArn": recorded.get("WorkteamArn"),
            "HumanTaskUiArn": self.arns.task_ui(flow.task_ui),
            "TaskTitle": flow.title,
            "TaskDescription": flow.description,
            "TaskCount": flow.task_count,
            "TaskAvailabilityLifetimeInSeconds": flow.availability_seconds,
            "TaskTimeLimitInSeconds": flow.time_limit_seconds,
            "TaskKeywords": recorded.get("TaskKeywords"),
        }
        output = {"S3OutputPath": flow.output_path, "KmsKeyId": recorded.get("KmsKeyId")}
        described = self._flow_summary(flow) | {
            "HumanLoopConfig": {key: value for key, value in human_config.items() if value is not None},
            "OutputConfig": {key: value for key, value in output.items() if value is not None},
            "RoleArn": flow.role_arn,
        }
        for key in ("HumanLoopRequestSource", "HumanLoopActivationConfig"):
            if key in recorded:
                described[key] = recorded[key]
        return {key: value for key, value in described.items() if value is not None}

    def ListFlowDefinitions(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        flows, token = self.loops.flows(page_request(body))
        return _with_token({"FlowDefinitionSummaries": [self._flow_summary(flow) for flow in flows]}, token)

    def DeleteFlowDefinition(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.loops.delete_flow(body["FlowDefinitionName"])
        return {}


OPERATIONS: dict[str, Callable[[SageMakerApi, dict[str, Any]], dict[str, Any]]] = {
    name: getattr(SageMakerApi, name) for name in dir(SageMakerApi) if name[0].isupper()
}


async def answer(request: Request, target: str) -> Response:
    """One SageMaker operation (``POST /``, ``X-Amz-Target: SageMaker.<Operation>``)."""
    tagloop = tagloop_of(request)
    operation = target.removeprefix(TARGET_PREFIX)
    handler = OPERATIONS.get(operation)
    settings = tagloop.settings
    if settings.auth:  # the key before the body: anonymous callers and unknown keys are not read
        await signer_principal(tagloop.keys, ",".join(request.headers.getlist("authorization")))
    raw = await request.body()
    if settings.auth:
        region = None if settings.aws_any_region else settings.aws_region
        principal = await run_in_threadpool(
            verify,
            tagloop.keys,
            request.method,
            str(request.url),
            request.headers.items(),
            raw,
            SIGNING_NAMES,
            region,
        )
        if not principal.allows("admin"):
            raise AccessDenied(
                f"this key's scope is {principal.scope!r}; SageMaker.{operation} needs 'admin'"
            )
    if handler is None:
        raise UnknownOperation(f"SageMaker.{operation} is not supported")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise UnreadableBody(f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise UnreadableBody("request body must be a JSON object")
    validate(operation, body, SERVICE)
    result = await run_in_threadpool(handler, SageMakerApi(tagloop), body)
    return Response(json.dumps(result), media_type=CONTENT_TYPE)
