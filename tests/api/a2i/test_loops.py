"""Human loops end to end: boto3's `sagemaker` and `sagemaker-a2i-runtime` clients against a
live server, reviewers answering through the review service, and output.json in A2I's shape
and place."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import botocore.exceptions
import pytest

REGION, ACCOUNT = "us-east-1", "123456789012"
PAGE_UI = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/tagloop"
WORKTEAM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/reviewers"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/a2i"


def create_flow(
    a2i, name: str, output: str, count: int = 1, ui: str = PAGE_UI, labels: str = "HARDWARE/BILLING"
):
    return a2i.client("sagemaker").create_flow_definition(
        FlowDefinitionName=name,
        HumanLoopConfig={
            "WorkteamArn": WORKTEAM,
            "HumanTaskUiArn": ui,
            "TaskTitle": "Route the ticket",
            "TaskDescription": "Choose the team",
            "TaskCount": count,
            "TaskAvailabilityLifetimeInSeconds": 3600,
            "TaskTimeLimitInSeconds": 300,
        },
        OutputConfig={"S3OutputPath": output},
        RoleArn=ROLE,
        Tags=[{"Key": "tagloop:labels", "Value": labels}],
    )["FlowDefinitionArn"]


def start(runtime, name: str, flow_arn: str, content: dict) -> str:
    return runtime.start_human_loop(
        HumanLoopName=name, FlowDefinitionArn=flow_arn, HumanLoopInput={"InputContent": json.dumps(content)}
    )["HumanLoopArn"]


def answer_next(tagloop, reviewer: str, labels: list[str]) -> str:
    """What a reviewer does on tagloop's page: take the next task and answer it."""
    task = tagloop.review.next_task(reviewer)
    assert task is not None
    tagloop.review.answer(task.id, reviewer, labels=labels, seconds=4.5)
    return task.id


def read_output(uri: str) -> dict:
    return json.loads(Path(uri.removeprefix("file://")).read_text(encoding="utf-8"))


def test_a_loop_from_start_to_output_json(a2i, code, status):
    flow_arn = create_flow(a2i, "desk-loops", f"file://{a2i.root}/allowed/a2i-out/")
    runtime = a2i.client("sagemaker-a2i-runtime", "classify")
    name = "Comprehend-Text1700000000000"  # what AWS's own samples send: mixed case
    content = {"taskObject": "the printer on floor 3 is jammed", "labels": ["HARDWARE", "BILLING"]}
    arn = start(runtime, name, flow_arn, content)
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/{name}"
    assert start(runtime, name, flow_arn, content) == arn  # the same request again: the same loop
    with pytest.raises(botocore.exceptions.ClientError) as conflict:
        start(runtime, name, flow_arn, content | {"taskObject": "other text"})
    assert (code(conflict), status(conflict)) == ("ConflictException", 409)
    described = runtime.describe_human_loop(HumanLoopName=name)
    assert (described["HumanLoopStatus"], described["FlowDefinitionArn"]) == ("InProgress", flow_arn)
    assert "HumanLoopOutput" not in described

    task = a2i.tagloop.review.next_task("alice")
    assert task.loop_name == name and task.text == content["taskObject"]
    assert set(task.choices) == {"HARDWARE", "BILLING"} and task.input_content == content
    a2i.tagloop.review.answer(task.id, "alice", labels=["HARDWARE"], seconds=4.5)

    described = runtime.describe_human_loop(HumanLoopName=name)
    assert described["HumanLoopStatus"] == "Completed"
    uri = described["HumanLoopOutput"]["OutputS3Uri"]
    created = described["CreationTime"].astimezone(UTC)
    expected = f"file://{a2i.root}/allowed/a2i-out/desk-loops/{created:%Y/%m/%d/%H/%M/%S}/{name}/output.json"
    assert uri == expected
    output = read_output(uri)
    assert set(output) == {"flowDefinitionArn", "humanAnswers", "humanLoopName", "inputContent"}
    assert (output["flowDefinitionArn"], output["humanLoopName"], output["inputContent"]) == (
        flow_arn,
        name,
        content,
    )
    (human,) = output["humanAnswers"]
    assert human["answerContent"] == {"category": {"label": "HARDWARE"}}  # as a crowd-classifier submits
    assert human["workerId"] == "alice" and human["timeSpentInSeconds"] == 4.5
    assert human["workerMetadata"]["identityData"]["sub"] == "alice"
    for moment in ("acceptanceTime", "submissionTime"):
        assert human[moment].endswith("Z") and datetime.fromisoformat(human[moment].replace("Z", "+00:00"))

    with pytest.raises(botocore.exceptions.ClientError) as still_named:  # a finished loop keeps its name
        start(runtime, name, flow_arn, {"taskObject": "new"})
    assert code(still_named) == "ConflictException"
    runtime.delete_human_loop(HumanLoopName=name)
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        runtime.describe_human_loop(HumanLoopName=name)
    assert code(gone) == "ResourceNotFoundException"


def test_task_count_stop_and_list(a2i, code):
    flow_arn = create_flow(a2i, "two-reviewers", "s3://not-allowed-bucket/out/", count=2)
    runtime = a2i.client("sagemaker-a2i-runtime", "classify")
    start(runtime, "needs-two", flow_arn, {"text": "refund my invoice"})
    first = answer_next(a2i.tagloop, "bob", ["BILLING"])
    assert runtime.describe_human_loop(HumanLoopName="needs-two")["HumanLoopStatus"] == "InProgress"
    assert answer_next(a2i.tagloop, "carol", ["BILLING"]) == first
    described = runtime.describe_human_loop(HumanLoopName="needs-two")
    assert described["HumanLoopStatus"] == "Completed"
    uri = described["HumanLoopOutput"]["OutputS3Uri"]
    assert uri.startswith(a2i.tagloop.human_loops.default_output)  # s3://not-allowed-bucket was not used
    assert [item["workerId"] for item in read_output(uri)["humanAnswers"]] == ["bob", "carol"]

    start(runtime, "to-stop", flow_arn, {"text": "vpn drops"})
    with pytest.raises(botocore.exceptions.ClientError) as busy:
        a2i.client("sagemaker").delete_flow_definition(FlowDefinitionName="two-reviewers")
    assert code(busy) == "ResourceInUse"  # a loop is still in progress
    runtime.stop_human_loop(HumanLoopName="to-stop")
    assert runtime.describe_human_loop(HumanLoopName="to-stop")["HumanLoopStatus"] == "Stopped"
    runtime.stop_human_loop(HumanLoopName="to-stop")  # stopping again changes nothing
    pages = runtime.get_paginator("list_human_loops").paginate(
        FlowDefinitionArn=flow_arn, SortOrder="Ascending", PaginationConfig={"PageSize": 1}
    )
    listed = [
        (item["HumanLoopName"], item["HumanLoopStatus"])
        for page in pages
        for item in page["HumanLoopSummaries"]
    ]
    assert listed == [("needs-two", "Completed"), ("to-stop", "Stopped")]
    a2i.client("sagemaker").delete_flow_definition(FlowDefinitionName="two-reviewers")
    with pytest.raises(botocore.exceptions.ClientError) as no_flow:
        runtime.describe_human_loop(HumanLoopName="to-stop")
    assert code(no_flow) == "ResourceNotFoundException"  # its loops went with it


def test_a_flow_takes_a_classifiers_labels_and_expired_loops_fail(a2i, tickets_csv, code):
    from tagloop.services.training import TrainRequest

    a2i.tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    labels = sorted({label for label in a2i.tagloop.catalog.version("desk", "v1")["labels"]})
    sagemaker, runtime = a2i.client("sagemaker"), a2i.client("sagemaker-a2i-runtime", "classify")
    flow_arn = sagemaker.create_flow_definition(
        FlowDefinitionName="desk-flow",
        HumanLoopConfig={
            "WorkteamArn": WORKTEAM,
            "HumanTaskUiArn": PAGE_UI,
            "TaskTitle": "Route the ticket",
            "TaskDescription": "Choose the team",
            "TaskCount": 1,
            "TaskAvailabilityLifetimeInSeconds": 60,
        },
        OutputConfig={"S3OutputPath": f"file://{a2i.root}/allowed/desk/"},
        RoleArn=ROLE,
        Tags=[
            {"Key": "tagloop:classifier", "Value": "desk"},
            {"Key": "tagloop:mode", "Value": "MULTI_CLASS"},
        ],
    )["FlowDefinitionArn"]
    assert sorted(a2i.tagloop.human_loops.flow("desk-flow").labels) == labels
    start(runtime, "will-expire", flow_arn, {"taskObject": "my screen flickers"})
    view = a2i.tagloop.review.list(status="InProgress")
    task = next(item for item in view if item.loop_name == "will-expire")
    assert sorted(task.choices) == labels and task.classifier == "desk"
    from sqlalchemy import update

    from tagloop.storage.tables import ReviewTaskRow

    with a2i.tagloop.database.transaction() as session:  # its 60 seconds have passed
        session.execute(
            update(ReviewTaskRow)
            .where(ReviewTaskRow.id == task.id)
            .values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    # no sweep ran since: describing and listing it say Failed all the same
    listed = runtime.list_human_loops(FlowDefinitionArn=flow_arn)["HumanLoopSummaries"]
    assert [(item["HumanLoopName"], item["HumanLoopStatus"]) for item in listed] == [
        ("will-expire", "Failed")
    ]
    described = runtime.describe_human_loop(HumanLoopName="will-expire")
    assert described["HumanLoopStatus"] == "Failed" and described["FailureCode"]
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        sagemaker.create_flow_definition(
            FlowDefinitionName="no-classifier",
            HumanLoopConfig={
                "WorkteamArn": WORKTEAM,
                "HumanTaskUiArn": PAGE_UI,
                "TaskTitle": "t",
                "TaskDescription": "d",
                "TaskCount": 1,
            },
            OutputConfig={"S3OutputPath": "s3://b/o/"},
            RoleArn=ROLE,
            Tags=[{"Key": "tagloop:classifier", "Value": "nothing-by-that-name"}],
        )
    assert code(unknown) == "ResourceNotFound"


def test_concurrent_starts_of_one_name(a2i, code):
    """Eight clients start the same loop at once: one loop, every caller gets its ARN; eight
    with different input: one loop, the others ConflictException (never a 500)."""
    flow_arn = create_flow(a2i, "racing", f"file://{a2i.root}/allowed/race/")

    def race(name: str, contents: list[dict]) -> list[str]:
        def one(content: dict) -> str:
            client = a2i.client("sagemaker-a2i-runtime", "classify")
            try:
                return start(client, name, flow_arn, content)
            except botocore.exceptions.ClientError as error:
                return error.response["Error"]["Code"]

        with ThreadPoolExecutor(len(contents)) as pool:
            return list(pool.map(one, contents))

    same = race("same-input", [{"taskObject": "x"}] * 8)
    assert same == [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/same-input"] * 8
    other = race("other-input", [{"taskObject": str(index)} for index in range(8)])
    assert sum(result.startswith("arn:") for result in other) == 1
    assert other.count("ConflictException") == 7
    loops = a2i.client("sagemaker-a2i-runtime", "classify").list_human_loops(FlowDefinitionArn=flow_arn)
    assert sorted(item["HumanLoopName"] for item in loops["HumanLoopSummaries"]) == [
        "other-input",
        "same-input",
    ]
