"""boto3's real `sagemaker` client against a live tagloop server: the control-plane operations
A2I users call (task UIs, flow definitions), signed with SigV4 by a tagloop key, their
validation against botocore's model, their errors, and where a flow may write."""

from __future__ import annotations

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION, ACCOUNT = "us-east-1", "123456789012"
ROLE = "arn:aws:iam::123456789012:role/a2i"
WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/reviewers"
TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier name="category" categories="{{ task.input.labels | to_json }}" header="Which team?">
    <classification-target>{{ task.input.taskObject }}</classification-target>
    <full-instructions header="Instructions">Pick the team.</full-instructions>
    <short-instructions>Pick the team.</short-instructions>
  </crowd-classifier>
</crowd-form>"""


def make_flow(sagemaker, name: str, ui_arn: str, output: str = "s3://customer-bucket/a2i/", **config):
    human = {
        "WorkteamArn": WORKTEAM,
        "HumanTaskUiArn": ui_arn,
        "TaskTitle": "Route the ticket",
        "TaskDescription": "Choose the team that handles this ticket",
        "TaskCount": 1,
    } | config
    return sagemaker.create_flow_definition(
        FlowDefinitionName=name,
        HumanLoopConfig=human,
        OutputConfig={"S3OutputPath": output},
        RoleArn=ROLE,
        Tags=[{"Key": "tagloop:labels", "Value": "HARDWARE/BILLING/NETWORK"}],
    )["FlowDefinitionArn"]


def test_task_ui_operations(a2i, code):
    sagemaker = a2i.client("sagemaker")
    arn = sagemaker.create_human_task_ui(HumanTaskUiName="ticket-ui", UiTemplate={"Content": TEMPLATE})[
        "HumanTaskUiArn"
    ]
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/ticket-ui"
    described = sagemaker.describe_human_task_ui(HumanTaskUiName="ticket-ui")
    assert described["HumanTaskUiArn"] == arn and described["HumanTaskUiStatus"] == "Active"
    assert len(described["UiTemplate"]["ContentSha256"]) == 64
    with pytest.raises(botocore.exceptions.ClientError) as again:
        sagemaker.create_human_task_ui(HumanTaskUiName="ticket-ui", UiTemplate={"Content": TEMPLATE})
    assert code(again) == "ResourceInUse"
    for index in range(3):
        sagemaker.create_human_task_ui(HumanTaskUiName=f"page-ui-{index}", UiTemplate={"Content": "<p>x</p>"})
    names = [
        summary["HumanTaskUiName"]
        for page in sagemaker.get_paginator("list_human_task_uis").paginate(
            SortOrder="Ascending", PaginationConfig={"PageSize": 2}
        )
        for summary in page["HumanTaskUiSummaries"]
    ]
    assert [name for name in names if name.startswith(("ticket", "page"))][:4] == [
        "ticket-ui",
        "page-ui-0",
        "page-ui-1",
        "page-ui-2",
    ]
    newest = sagemaker.list_human_task_uis(MaxResults=1)["HumanTaskUiSummaries"]
    assert newest[0]["HumanTaskUiName"] == names[-1]  # Descending is the default
    sagemaker.delete_human_task_ui(HumanTaskUiName="page-ui-0")
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        sagemaker.describe_human_task_ui(HumanTaskUiName="page-ui-0")
    assert code(gone) == "ResourceNotFound"
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        sagemaker.delete_human_task_ui(HumanTaskUiName="page-ui-0")
    assert code(missing) == "ResourceNotFound"


def test_templates_are_checked(a2i, code):
    sagemaker = a2i.client("sagemaker")
    with pytest.raises(botocore.exceptions.ClientError) as broken:
        sagemaker.create_human_task_ui(
            HumanTaskUiName="broken-ui", UiTemplate={"Content": "{% for x in task.input %}<p>"}
        )
    assert code(broken) == "ValidationException" and "Liquid" in broken.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as upper:  # SageMaker's own name pattern
        sagemaker.create_human_task_ui(HumanTaskUiName="Upper-UI", UiTemplate={"Content": "<p>x</p>"})
    assert code(upper) == "ValidationException"
    assert "regular expression pattern" in upper.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as reserved:
        sagemaker.create_human_task_ui(HumanTaskUiName="tagloop", UiTemplate={"Content": "<p>x</p>"})
    assert code(reserved) == "ResourceInUse"


def test_flow_definition_operations(a2i, code):
    sagemaker = a2i.client("sagemaker")
    ui = sagemaker.create_human_task_ui(HumanTaskUiName="flow-ui", UiTemplate={"Content": TEMPLATE})
    arn = make_flow(
        sagemaker,
        "tickets",
        ui["HumanTaskUiArn"],
        TaskCount=2,
        TaskAvailabilityLifetimeInSeconds=3600,
        TaskTimeLimitInSeconds=300,
    )
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/tickets"
    described = sagemaker.describe_flow_definition(FlowDefinitionName="tickets")
    assert described["FlowDefinitionStatus"] == "Active" and described["RoleArn"] == ROLE
    config = described["HumanLoopConfig"]
    assert (config["TaskCount"], config["TaskTimeLimitInSeconds"], config["WorkteamArn"]) == (
        2,
        300,
        WORKTEAM,
    )
    assert config["HumanTaskUiArn"] == ui["HumanTaskUiArn"]
    assert described["OutputConfig"]["S3OutputPath"] == "s3://customer-bucket/a2i/"  # as given
    flow = a2i.tagloop.human_loops.flow("tickets")
    assert flow.labels == ["HARDWARE", "BILLING", "NETWORK"]
    assert flow.output_root.endswith("/artifacts/human-loops")  # not allowed: the artifact store
    summaries = sagemaker.list_flow_definitions()["FlowDefinitionSummaries"]
    assert "tickets" in [summary["FlowDefinitionName"] for summary in summaries]
    with pytest.raises(botocore.exceptions.ClientError) as in_use:
        sagemaker.delete_human_task_ui(HumanTaskUiName="flow-ui")
    assert code(in_use) == "ResourceInUse"
    with pytest.raises(botocore.exceptions.ClientError) as again:
        make_flow(sagemaker, "tickets", ui["HumanTaskUiArn"])
    assert code(again) == "ResourceInUse"
    sagemaker.delete_flow_definition(FlowDefinitionName="tickets")
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        sagemaker.describe_flow_definition(FlowDefinitionName="tickets")
    assert code(gone) == "ResourceNotFound"
    sagemaker.delete_human_task_ui(HumanTaskUiName="flow-ui")  # no flow uses it now


def test_flow_definition_errors(a2i, code):
    sagemaker = a2i.client("sagemaker", checked=False)
    missing_ui = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/nothing-here"
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        make_flow(sagemaker, "orphan", missing_ui)
    assert code(unknown) == "ResourceNotFound"
    tagloop_page = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/tagloop"
    for count in (0, 4):
        with pytest.raises(botocore.exceptions.ClientError) as bad_count:
            make_flow(sagemaker, "counted", tagloop_page, TaskCount=count)
        assert code(bad_count) == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as short_limit:
        make_flow(sagemaker, "counted", tagloop_page, TaskTimeLimitInSeconds=10)
    assert code(short_limit) == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as not_arn:
        make_flow(sagemaker, "counted", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/x")
    assert code(not_arn) == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        sagemaker.delete_flow_definition(FlowDefinitionName="never-made")
    assert code(gone) == "ResourceNotFound"


def test_an_allowed_output_path_is_used_and_any_other_goes_to_the_artifact_store(a2i, code):
    """Attacker: S3OutputPath naming a folder outside TAGLOOP_ALLOWED_DATA_URLS (or another
    protocol) never makes the server write there."""
    sagemaker, root = a2i.client("sagemaker"), a2i.root
    page = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/tagloop"
    make_flow(sagemaker, "inside", page, output=f"file://{root}/allowed/out/")
    loops = a2i.tagloop.human_loops
    assert loops.flow("inside").output_root == f"file://{root}/allowed/out"
    outside = [
        f"file://{root}/elsewhere/",
        f"file://{root}/allowed/../elsewhere/",
        "/etc/",
        "http://169.254.169.254/latest/",
        "s3://someone-elses-bucket/x/",
    ]
    for index, path in enumerate(outside):
        make_flow(sagemaker, f"outside-{index}", page, output=path)
        assert loops.flow(f"outside-{index}").output_root == loops.default_output, path
    assert not (root / "elsewhere").exists()


def test_signatures_and_scopes(a2i, code):
    admin = a2i.keys["admin"]
    for scope in ("classify", "review"):
        with pytest.raises(botocore.exceptions.ClientError) as denied:
            a2i.client("sagemaker", scope=scope).list_flow_definitions()
        assert code(denied) == "AccessDeniedException"
    with pytest.raises(botocore.exceptions.ClientError) as forged:
        a2i.client("sagemaker", secret="x" * 40).list_flow_definitions()
    assert code(forged) == "InvalidSignatureException"
    assert admin["secret"]
    anonymous = httpx.post(
        a2i.url + "/",
        headers={
            "X-Amz-Target": "SageMaker.ListFlowDefinitions",
            "Content-Type": "application/x-amz-json-1.1",
        },
        content=b"{}",
    )
    assert anonymous.status_code == 403
    assert anonymous.json()["__type"] == "MissingAuthenticationTokenException"
    comprehend_signed = boto3.client(  # a signature for another service is refused
        "comprehend",
        endpoint_url=a2i.url,
        aws_access_key_id=admin["access_key_id"],
        aws_secret_access_key=admin["secret"],
        region_name=REGION,
    )
    comprehend_signed.meta.events.register(
        "before-sign.comprehend.*",
        lambda request, **_: request.headers.replace_header("X-Amz-Target", "SageMaker.ListFlowDefinitions"),
    )
    with pytest.raises(botocore.exceptions.ClientError) as wrong_service:
        comprehend_signed.list_endpoints()
    assert code(wrong_service) == "InvalidSignatureException"


def test_unknown_operations_and_unreadable_bodies(a2i, code):
    sagemaker = a2i.client("sagemaker")
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        sagemaker.list_notebook_instances()
    assert code(unknown) == "UnknownOperationException"
    key = a2i.keys["admin"]
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        response = signed_post(a2i.url, key, "SageMaker.ListFlowDefinitions", raw)
        assert response.status_code == 400
        assert response.json()["__type"] == "SerializationException"
    wrong_type = signed_post(a2i.url, key, "SageMaker.ListFlowDefinitions", b'{"MaxResults": "ten"}')
    assert (wrong_type.status_code, wrong_type.json()["__type"]) == (400, "ValidationException")


def signed_post(url: str, key: dict, target: str, body: bytes) -> httpx.Response:
    """A request signed by hand (for bodies boto3 would never send)."""
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "sagemaker", REGION).add_auth(request)
    return httpx.post(url + "/", headers=dict(request.headers.items()), content=body)
