"""boto3's real `sagemaker-a2i-runtime` client against a live tagloop server: human loops
started, described, listed (with boto3's paginator), stopped and deleted; their output.json;
the errors A2I answers (bad names, duplicates, oversized or broken input, unknown flows and
loops); signatures and scopes."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import botocore.exceptions
import httpx
import pytest

REGION, ACCOUNT = "us-east-1", "123456789012"
FLOW_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/tickets"


@pytest.fixture(scope="module")
def server(a2i):
    """The module's server with a flow definition shown on tagloop's own page."""
    a2i.flow("tickets", tags=[{"Key": "tagloop:labels", "Value": "HARDWARE/BILLING"}])
    return a2i


def runtime(server, scope: str = "classify", checked: bool = True, secret: str | None = None):
    return server.client("sagemaker-a2i-runtime", scope, checked, secret)


def test_input_errors_are_validation_exceptions(server, code, status):
    client = runtime(server, checked=False)
    cases = [
        ("", {"taskObject": "x"}),  # empty name
        ("a" * 64, {"taskObject": "x"}),  # too long
        ("bad_name", {"taskObject": "x"}),  # underscore
        ("bad name", {"taskObject": "x"}),
        ("-leading", {"taskObject": "x"}),
    ]
    for name, content in cases:
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.start_human_loop(
                HumanLoopName=name,
                FlowDefinitionArn=FLOW_ARN,
                HumanLoopInput={"InputContent": json.dumps(content)},
            )
        assert (code(refused), status(refused)) == ("ValidationException", 400), name
    for content in ("{not json", "", "x" * (3 * 1024 * 1024 + 1)):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.start_human_loop(
                HumanLoopName="fine-name",
                FlowDefinitionArn=FLOW_ARN,
                HumanLoopInput={"InputContent": content},
            )
        assert code(refused) == "ValidationException", content[:20]
    wide = json.dumps(
        {"taskObject": "é" * (2 * 1024 * 1024)}, ensure_ascii=False
    )  # under 3 M characters, over 3 MB
    with pytest.raises(botocore.exceptions.ClientError) as too_large:
        client.start_human_loop(
            HumanLoopName="wide", FlowDefinitionArn=FLOW_ARN, HumanLoopInput={"InputContent": wide}
        )
    assert (
        code(too_large) == "ValidationException" and "bytes" in too_large.value.response["Error"]["Message"]
    )


def test_unknown_flows_and_loops(server, code, status):
    client = runtime(server)
    unknown_flow = FLOW_ARN.replace("tickets", "no-such-flow")
    with pytest.raises(botocore.exceptions.ClientError) as no_flow:
        client.start_human_loop(
            HumanLoopName="orphan", FlowDefinitionArn=unknown_flow, HumanLoopInput={"InputContent": "{}"}
        )
    assert (code(no_flow), status(no_flow)) == ("ResourceNotFoundException", 404)
    with pytest.raises(botocore.exceptions.ClientError) as no_flow_list:
        client.list_human_loops(FlowDefinitionArn=unknown_flow)
    assert code(no_flow_list) == "ResourceNotFoundException"
    for call in (client.describe_human_loop, client.delete_human_loop, client.stop_human_loop):
        with pytest.raises(botocore.exceptions.ClientError) as missing:
            call(HumanLoopName="never-started")
        assert (code(missing), status(missing)) == ("ResourceNotFoundException", 404), call


def test_list_filters_sorts_and_pages(server, code, status):
    client = runtime(server)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    names = [f"listed-{index}" for index in range(5)]
    for index, name in enumerate(names):
        server.loop_row("tickets", None, name, "Completed", start + timedelta(hours=index))
    paginator = client.get_paginator("list_human_loops")
    pages = list(
        paginator.paginate(
            FlowDefinitionArn=FLOW_ARN,
            SortOrder="Ascending",
            CreationTimeBefore=start + timedelta(days=1),
            PaginationConfig={"PageSize": 2},
        )
    )
    assert [len(page["HumanLoopSummaries"]) for page in pages] == [2, 2, 1]
    listed = [summary["HumanLoopName"] for page in pages for summary in page["HumanLoopSummaries"]]
    assert listed == names
    summary = pages[0]["HumanLoopSummaries"][0]
    assert summary["HumanLoopStatus"] == "Completed" and summary["FlowDefinitionArn"] == FLOW_ARN
    newest = client.list_human_loops(
        FlowDefinitionArn=FLOW_ARN,
        CreationTimeAfter=start + timedelta(minutes=90),
        CreationTimeBefore=start + timedelta(days=1),
        MaxResults=100,
    )
    assert [item["HumanLoopName"] for item in newest["HumanLoopSummaries"]] == names[:1:-1]  # Descending
    with pytest.raises(botocore.exceptions.ClientError) as bad_token:
        client.list_human_loops(FlowDefinitionArn=FLOW_ARN, NextToken="bm90IGEgdG9rZW4=")
    assert code(bad_token) == "ValidationException"
    raw = runtime(server, checked=False)
    with pytest.raises(botocore.exceptions.ClientError) as too_many:
        raw.list_human_loops(FlowDefinitionArn=FLOW_ARN, MaxResults=101)
    assert code(too_many) == "ValidationException"


def test_delete_only_finished_loops(server, code, status):
    client = runtime(server)
    server.loop_row("tickets", None, "finished-loop", "Completed")
    server.loop_row("tickets", None, "running-loop", status="InProgress")
    client.delete_human_loop(HumanLoopName="finished-loop")
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        client.describe_human_loop(HumanLoopName="finished-loop")
    assert code(gone) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as running:
        client.delete_human_loop(HumanLoopName="running-loop")
    assert code(running) == "ValidationException"
    described = client.describe_human_loop(HumanLoopName="running-loop")
    assert described["HumanLoopStatus"] == "InProgress" and "HumanLoopOutput" not in described
    assert described["HumanLoopArn"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/running-loop"


def test_signatures_scopes_and_oversized_bodies(server, code, status):
    with pytest.raises(botocore.exceptions.ClientError) as forged:
        runtime(server, secret="y" * 40).describe_human_loop(HumanLoopName="x")
    assert (code(forged), status(forged)) == ("InvalidSignatureException", 403)
    with pytest.raises(botocore.exceptions.ClientError) as review_key:
        runtime(server, scope="review").describe_human_loop(HumanLoopName="x")
    assert (code(review_key), status(review_key)) == ("AccessDeniedException", 403)
    anonymous = httpx.get(server.url + "/human-loops/x")
    assert anonymous.status_code == 401 or anonymous.status_code == 403
    assert anonymous.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    limit = server.tagloop.settings.max_body_bytes
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:  # a body announced over the limit
        connection.sendall(
            f"POST /human-loops HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {limit + 1}\r\n\r\n{{".encode()
        )
        answer = connection.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413") and "x-amzn-errortype: RequestEntityTooLargeException" in answer
