"""Comprehend's Flywheel API through boto3's real `comprehend` client against a live tagloop
server: flywheels, their datasets, iterations, endpoints and jobs on a flywheel, and the
answers to bad input (Comprehend's error shapes, never a 5xx)."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.exceptions
import botocore.session
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import func, select

from tagloop.api.server import create_app
from tagloop.settings import Settings
from tagloop.storage.tables import DatasetRow, DocumentRow, LoopDatasetRow, LoopRow

ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/comprehend"
LAKE = "s3://lake-bucket/flywheels/"
PREFIX = f"arn:aws:comprehend:{REGION}:{ACCOUNT}"


def write_rows(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, tickets, serve_in_thread):
    """A tagloop server with its job workers; ``inbox/`` is the one data location its APIs may
    use, ``private/`` (beside it) holds a file no API field may read."""
    root = tmp_path_factory.mktemp("flywheels")
    inbox = root / "inbox"
    inbox.mkdir()
    (root / "private").mkdir()
    write_rows(inbox / "tickets.csv", tickets)
    write_rows(inbox / "more.csv", tickets[::2])
    write_rows(inbox / "test.csv", tickets[1::3])
    write_rows(root / "private" / "secret.csv", tickets[:20])
    settings = Settings(
        data_dir=root / "data", endpoint_refresh_seconds=0.2, allowed_data_urls=(f"file://{inbox}/",)
    )
    app = create_app(settings)
    tagloop = app.state.tagloop
    keys = {scope: tagloop.keys.create(scope, scope) for scope in ("classify", "admin")}
    with serve_in_thread(app) as port:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "keys": keys,
            "root": root,
            "inbox": inbox,
            "tagloop": tagloop,
        }


@pytest.fixture(scope="module")
def cbor_model_dir(tmp_path_factory):
    loader = botocore.session.get_session().get_component("data_loader")
    model = copy.deepcopy(loader.load_service_model("comprehend", "service-2"))
    model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    root = tmp_path_factory.mktemp("botocore-data")
    folder = root / "comprehend" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model), encoding="utf-8")
    return root


def client(server, scope: str = "admin", cbor_dir: Path | None = None):
    session = botocore.session.get_session()
    if cbor_dir is not None:
        session.get_component("data_loader").search_paths.insert(0, str(cbor_dir))
    key = server["keys"][scope]
    return boto3.Session(botocore_session=session).client(
        "comprehend",
        endpoint_url=server["url"],
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret"],
        region_name=REGION,
    )


@pytest.fixture(scope="module")
def admin(server):
    return client(server)


def code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


def refused(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return code(caught), caught.value.response["Error"]["Message"]


def wait(describe, done, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while True:
        found = describe()
        if done(found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def trained(admin, server, name: str, version: str | None = None) -> str:
    arn = admin.create_document_classifier(
        DocumentClassifierName=name,
        DataAccessRoleArn=ROLE,
        InputDataConfig={"S3Uri": f"file://{server['inbox']}/tickets.csv"},
        LanguageCode="en",
        **({"VersionName": version} if version else {}),
    )["DocumentClassifierArn"]
    properties = wait(
        lambda: admin.describe_document_classifier(DocumentClassifierArn=arn)["DocumentClassifierProperties"],
        lambda p: p["Status"] in ("TRAINED", "IN_ERROR", "STOPPED"),
    )
    assert properties["Status"] == "TRAINED", properties
    return arn


def dataset_config(path: str) -> dict:
    return {"DataFormat": "COMPREHEND_CSV", "DocumentClassifierInputDataConfig": {"S3Uri": path}}


def rows(server, model) -> int:
    with server["tagloop"].database.reading() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_flywheel_on_an_active_model(server, admin):
    model = trained(admin, server, "fw-desk")
    created = admin.create_flywheel(
        FlywheelName="desk-wheel",
        ActiveModelArn=model,
        DataAccessRoleArn=ROLE,
        DataLakeS3Uri=LAKE,
        Tags=[{"Key": "team", "Value": "support"}],
    )
    flywheel = f"{PREFIX}:flywheel/desk-wheel"
    assert created["FlywheelArn"] == flywheel and created["ActiveModelArn"] == model
    properties = admin.describe_flywheel(FlywheelArn=flywheel)["FlywheelProperties"]
    assert properties["Status"] == "ACTIVE" and properties["ModelType"] == "DOCUMENT_CLASSIFIER"
    assert (properties["ActiveModelArn"], properties["DataLakeS3Uri"], properties["DataAccessRoleArn"]) == (
        model,
        LAKE,
        ROLE,
    )
    config = properties["TaskConfig"]["DocumentClassificationConfig"]
    assert config["Mode"] == "MULTI_CLASS" and len(config["Labels"]) == 6
    assert isinstance(properties["CreationTime"], datetime) and "LatestFlywheelIteration" not in properties
    summaries = admin.list_flywheels(Filter={"Status": "ACTIVE"})["FlywheelSummaryList"]
    assert flywheel in [summary["FlywheelArn"] for summary in summaries]
    # one flywheel per name, one per classifier
    assert (
        refused(
            admin.create_flywheel,
            FlywheelName="desk-wheel",
            ActiveModelArn=model,
            DataAccessRoleArn=ROLE,
            DataLakeS3Uri=LAKE,
        )[0]
        == "ResourceInUseException"
    )
    assert (
        refused(
            admin.create_flywheel,
            FlywheelName="other-wheel",
            ActiveModelArn=model,
            DataAccessRoleArn=ROLE,
            DataLakeS3Uri=LAKE,
        )[0]
        == "ResourceInUseException"
    )

    # datasets: TRAIN and TEST, imported from the allowed location
    train = admin.create_dataset(
        FlywheelArn=flywheel,
        DatasetName="more-tickets",
        DatasetType="TRAIN",
        Description="tickets of March",
        InputDataConfig=dataset_config(f"file://{server['inbox']}/more.csv"),
    )["DatasetArn"]
    assert train == f"{flywheel}/dataset/more-tickets"
    test = admin.create_dataset(
        FlywheelArn=flywheel,
        DatasetName="held-out",
        DatasetType="TEST",
        InputDataConfig=dataset_config(str(server["inbox"] / "test.csv")),
    )["DatasetArn"]
    described = admin.describe_dataset(DatasetArn=train)["DatasetProperties"]
    assert (described["Status"], described["DatasetType"], described["NumberOfDocuments"]) == (
        "COMPLETED",
        "TRAIN",
        207,
    )
    assert described["Description"] == "tickets of March" and isinstance(described["EndTime"], datetime)
    listed = admin.list_datasets(FlywheelArn=flywheel)["DatasetPropertiesList"]
    assert [item["DatasetArn"] for item in listed] == [train, test]
    only_test = admin.list_datasets(FlywheelArn=flywheel, Filter={"DatasetType": "TEST"})[
        "DatasetPropertiesList"
    ]
    assert [item["DatasetArn"] for item in only_test] == [test]
    first = admin.list_datasets(FlywheelArn=flywheel, MaxResults=1)
    second = admin.list_datasets(FlywheelArn=flywheel, MaxResults=1, NextToken=first["NextToken"])
    assert [p["DatasetArn"] for p in first["DatasetPropertiesList"] + second["DatasetPropertiesList"]] == [
        train,
        test,
    ]
    assert "NextToken" not in second
    assert (
        refused(
            admin.create_dataset,
            FlywheelArn=flywheel,
            DatasetName="held-out",
            InputDataConfig=dataset_config(str(server["inbox"] / "test.csv")),
        )[0]
        == "ResourceInUseException"
    )
    # the documents are stored with the split of their dataset's kind
    with server["tagloop"].database.reading() as session:
        splits = dict(
            session.execute(
                select(LoopDatasetRow.kind, func.min(DocumentRow.split))
                .join(DocumentRow, DocumentRow.dataset_id == LoopDatasetRow.dataset_id)
                .group_by(LoopDatasetRow.kind)
            ).all()
        )
    assert splits == {"TRAIN": "train", "TEST": "test"}

    # UpdateFlywheel: a manual promotion of another version of the flywheel's classifier
    second_version = trained(admin, server, "fw-desk", "second")
    updated = admin.update_flywheel(FlywheelArn=flywheel, ActiveModelArn=second_version)["FlywheelProperties"]
    assert updated["ActiveModelArn"] == second_version
    other = trained(admin, server, "fw-other")
    assert (
        refused(admin.update_flywheel, FlywheelArn=flywheel, ActiveModelArn=other)[0]
        == "InvalidRequestException"
    )

    # DeleteFlywheel: the flywheel and its datasets go, the classifier and its versions stay
    datasets_before = rows(server, DatasetRow)
    admin.delete_flywheel(FlywheelArn=flywheel)
    assert refused(admin.describe_flywheel, FlywheelArn=flywheel)[0] == "ResourceNotFoundException"
    assert refused(admin.describe_dataset, DatasetArn=train)[0] == "ResourceNotFoundException"
    assert rows(server, DatasetRow) == datasets_before - 2
    assert admin.describe_document_classifier(DocumentClassifierArn=second_version)
    # the classifier may get a flywheel again
    again = admin.create_flywheel(
        FlywheelName="desk-wheel-2", ActiveModelArn=model, DataAccessRoleArn=ROLE, DataLakeS3Uri=LAKE
    )
    assert again["ActiveModelArn"] == model
    admin.delete_flywheel(FlywheelArn=again["FlywheelArn"])


def test_a_flywheel_from_a_task_configuration(server, admin):
    created = admin.create_flywheel(
        FlywheelName="fresh-wheel",
        TaskConfig={
            "LanguageCode": "en",
            "DocumentClassificationConfig": {
                "Mode": "MULTI_CLASS",
                "Labels": ["HARDWARE", "SOFTWARE", "BILLING", "ACCOUNT", "NETWORK", "OTHER"],
            },
        },
        ModelType="DOCUMENT_CLASSIFIER",
        DataAccessRoleArn=ROLE,
        DataLakeS3Uri=LAKE,
    )
    flywheel = created["FlywheelArn"]
    assert "ActiveModelArn" not in created
    properties = admin.describe_flywheel(FlywheelArn=flywheel)["FlywheelProperties"]
    assert "ActiveModelArn" not in properties
    assert properties["TaskConfig"]["DocumentClassificationConfig"]["Mode"] == "MULTI_CLASS"
    # a dataset whose labels the task does not name is refused whole, nothing kept
    before = rows(server, DocumentRow)
    write_rows(server["inbox"] / "odd.csv", [("HARDWARE", "printer jammed"), ("WEATHER", "it rains")])
    kind, message = refused(
        admin.create_dataset,
        FlywheelArn=flywheel,
        DatasetName="odd",
        InputDataConfig=dataset_config(str(server["inbox"] / "odd.csv")),
    )
    assert kind == "InvalidRequestException" and "WEATHER" in message
    assert rows(server, DocumentRow) == before
    assert admin.list_datasets(FlywheelArn=flywheel)["DatasetPropertiesList"] == []
    admin.delete_flywheel(FlywheelArn=flywheel)  # its classifier had no version: it goes too
    assert refused(admin.describe_flywheel, FlywheelArn=flywheel)[0] == "ResourceNotFoundException"
    with server["tagloop"].database.reading() as session:
        assert (
            session.scalar(select(func.count()).select_from(LoopRow).where(LoopRow.name == "fresh-wheel"))
            == 0
        )


def test_flywheel_operations_speak_cbor_too(server, cbor_model_dir):
    cbor = client(server, cbor_dir=cbor_model_dir)
    created = cbor.create_flywheel(
        FlywheelName="cbor-wheel",
        TaskConfig={"LanguageCode": "en", "DocumentClassificationConfig": {"Mode": "MULTI_LABEL"}},
        ModelType="DOCUMENT_CLASSIFIER",
        DataAccessRoleArn=ROLE,
        DataLakeS3Uri=LAKE,
    )
    properties = cbor.describe_flywheel(FlywheelArn=created["FlywheelArn"])["FlywheelProperties"]
    assert properties["FlywheelArn"] == created["FlywheelArn"]
    assert isinstance(properties["CreationTime"], datetime)
    cbor.delete_flywheel(FlywheelArn=created["FlywheelArn"])


def test_list_flywheels_filters_and_pages(server, admin):
    names = [f"page-wheel-{index}" for index in range(3)]
    for name in names:
        admin.create_flywheel(
            FlywheelName=name,
            TaskConfig={"LanguageCode": "en", "DocumentClassificationConfig": {"Mode": "MULTI_LABEL"}},
            ModelType="DOCUMENT_CLASSIFIER",
            DataAccessRoleArn=ROLE,
            DataLakeS3Uri=LAKE,
        )
    seen, token = [], None
    while True:
        page = admin.list_flywheels(MaxResults=2, **({"NextToken": token} if token else {}))
        seen += [summary["FlywheelArn"].rsplit("/", 1)[-1] for summary in page["FlywheelSummaryList"]]
        token = page.get("NextToken")
        if not token:
            break
    assert [name for name in seen if name.startswith("page-wheel")] == names
    future = datetime.now(UTC) + timedelta(days=1)
    assert admin.list_flywheels(Filter={"CreationTimeAfter": future})["FlywheelSummaryList"] == []
    assert admin.list_flywheels(Filter={"Status": "FAILED"})["FlywheelSummaryList"] == []
    assert refused(admin.list_flywheels, NextToken="forged")[0] == "InvalidRequestException"
    for name in names:
        admin.delete_flywheel(FlywheelArn=f"{PREFIX}:flywheel/{name}")


def wait_iteration(admin, flywheel: str, iteration: str) -> dict:
    return wait(
        lambda: admin.describe_flywheel_iteration(FlywheelArn=flywheel, FlywheelIterationId=iteration)[
            "FlywheelIterationProperties"
        ],
        lambda p: p["Status"] in ("COMPLETED", "FAILED", "STOPPED"),
        seconds=300,
    )


def wait_serving(admin, endpoint: str, model: str) -> dict:
    return wait(
        lambda: admin.describe_endpoint(EndpointArn=endpoint)["EndpointProperties"],
        lambda p: p["Status"] == "IN_SERVICE" and p["ModelArn"] == model,
        seconds=30,
    )


def test_iterations_endpoints_and_jobs_on_a_flywheel(server, admin):
    """The whole flywheel workflow as Comprehend code writes it: a flywheel on a model, data
    added, an iteration run and read back, the trained model made active by hand, an endpoint
    on the flywheel following the active model, a job on the flywheel using it."""
    model = trained(admin, server, "loop-desk")
    flywheel = admin.create_flywheel(
        FlywheelName="loop-wheel", ActiveModelArn=model, DataAccessRoleArn=ROLE, DataLakeS3Uri=LAKE
    )["FlywheelArn"]
    admin.create_dataset(
        FlywheelArn=flywheel,
        DatasetName="march",
        DatasetType="TRAIN",
        InputDataConfig=dataset_config(str(server["inbox"] / "more.csv")),
    )
    admin.create_dataset(
        FlywheelArn=flywheel,
        DatasetName="gold",
        DatasetType="TEST",
        InputDataConfig=dataset_config(str(server["inbox"] / "test.csv")),
    )
    following = admin.create_endpoint(
        EndpointName="loop-follows", FlywheelArn=flywheel, DesiredInferenceUnits=1
    )
    assert following["ModelArn"] == model
    pinned = admin.create_endpoint(EndpointName="loop-pinned", ModelArn=model, DesiredInferenceUnits=1)
    described = wait_serving(admin, following["EndpointArn"], model)
    assert described["FlywheelArn"] == flywheel
    assert "FlywheelArn" not in wait_serving(admin, pinned["EndpointArn"], model)

    started = admin.start_flywheel_iteration(FlywheelArn=flywheel)
    iteration = started["FlywheelIterationId"]
    assert started["FlywheelArn"] == flywheel and re.fullmatch(r"[0-9]{8}T[0-9]{6}Z", iteration)
    properties = wait_iteration(admin, flywheel, iteration)
    assert properties["Status"] == "COMPLETED", properties
    assert properties["EvaluatedModelArn"] == model
    challenger = properties["TrainedModelArn"]
    assert challenger.startswith(f"{PREFIX}:document-classifier/loop-desk/version/") and challenger != model
    for metrics in (properties["EvaluatedModelMetrics"], properties["TrainedModelMetrics"]):
        assert set(metrics) == {"AverageF1Score", "AveragePrecision", "AverageRecall", "AverageAccuracy"}
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert properties["Message"].startswith(("promoted", "kept")), properties["Message"]
    assert isinstance(properties["CreationTime"], datetime) and isinstance(properties["EndTime"], datetime)
    history = admin.list_flywheel_iteration_history(FlywheelArn=flywheel)["FlywheelIterationPropertiesList"]
    assert [item["FlywheelIterationId"] for item in history] == [iteration]
    future = datetime.now(UTC) + timedelta(days=1)
    assert (
        admin.list_flywheel_iteration_history(FlywheelArn=flywheel, Filter={"CreationTimeAfter": future})[
            "FlywheelIterationPropertiesList"
        ]
        == []
    )
    assert (
        admin.describe_flywheel(FlywheelArn=flywheel)["FlywheelProperties"]["LatestFlywheelIteration"]
        == iteration
    )
    assert (
        refused(
            admin.describe_flywheel_iteration, FlywheelArn=flywheel, FlywheelIterationId="20000101T000000Z"
        )[0]
        == "ResourceNotFoundException"
    )

    # Comprehend leaves promotion to a person: UpdateFlywheel makes the trained model active
    # (the loop's rule may have done so already); the following endpoint moves, the pinned stays
    active = admin.update_flywheel(FlywheelArn=flywheel, ActiveModelArn=challenger)["FlywheelProperties"]
    assert active["ActiveModelArn"] == challenger
    wait_serving(admin, following["EndpointArn"], challenger)
    assert (
        admin.describe_endpoint(EndpointArn=pinned["EndpointArn"])["EndpointProperties"]["ModelArn"] == model
    )
    classify = client(server, "classify")
    answer = classify.classify_document(Text="the printer is jammed", EndpointArn=following["EndpointArn"])
    assert answer["Classes"][0]["Name"] == "HARDWARE"
    # and back: a rollback is one more UpdateFlywheel
    admin.update_flywheel(FlywheelArn=flywheel, ActiveModelArn=model)
    wait_serving(admin, following["EndpointArn"], model)
    # UpdateEndpoint: FlywheelArn makes the pinned endpoint follow; DesiredModelArn pins again
    assert (
        admin.update_endpoint(EndpointArn=pinned["EndpointArn"], FlywheelArn=flywheel)["DesiredModelArn"]
        == model
    )
    assert (
        admin.describe_endpoint(EndpointArn=pinned["EndpointArn"])["EndpointProperties"]["FlywheelArn"]
        == flywheel
    )
    admin.update_endpoint(EndpointArn=pinned["EndpointArn"], DesiredModelArn=challenger)
    repinned = wait_serving(admin, pinned["EndpointArn"], challenger)
    assert "FlywheelArn" not in repinned
    other = trained(admin, server, "loop-other")
    assert (
        refused(
            admin.create_endpoint,
            EndpointName="loop-bad",
            FlywheelArn=flywheel,
            ModelArn=other,
            DesiredInferenceUnits=1,
        )[0]
        == "InvalidRequestException"
    )
    assert (
        refused(admin.create_endpoint, EndpointName="loop-none", DesiredInferenceUnits=1)[0]
        == "InvalidRequestException"
    )

    # a classification job on the flywheel runs its active model
    source = server["inbox"] / "job.txt"
    source.write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    job = admin.start_document_classification_job(
        FlywheelArn=flywheel,
        InputDataConfig={"S3Uri": str(source), "InputFormat": "ONE_DOC_PER_LINE"},
        OutputDataConfig={"S3Uri": str(server["inbox"] / "job-out")},
        DataAccessRoleArn=ROLE,
    )
    described_job = admin.describe_document_classification_job(JobId=job["JobId"])[
        "DocumentClassificationJobProperties"
    ]
    assert described_job["DocumentClassifierArn"] == model
    assert described_job["FlywheelArn"] == flywheel  # reported back, as Comprehend does
    assert (
        refused(
            admin.start_document_classification_job,
            InputDataConfig={"S3Uri": str(source)},
            OutputDataConfig={"S3Uri": str(server["inbox"] / "job-out")},
            DataAccessRoleArn=ROLE,
        )[0]
        == "InvalidRequestException"
    )
    wait(
        lambda: admin.describe_document_classification_job(JobId=job["JobId"])[
            "DocumentClassificationJobProperties"
        ],
        lambda p: p["JobStatus"] in ("COMPLETED", "FAILED", "STOPPED"),
    )
    for endpoint in (following, pinned):
        admin.delete_endpoint(EndpointArn=endpoint["EndpointArn"])


# ---- the attacker's tests ------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_wheel(server, admin):
    """A flywheel for bad requests to aim at."""
    admin.create_flywheel(
        FlywheelName="target-wheel",
        TaskConfig={"LanguageCode": "en", "DocumentClassificationConfig": {"Mode": "MULTI_CLASS"}},
        ModelType="DOCUMENT_CLASSIFIER",
        DataAccessRoleArn=ROLE,
        DataLakeS3Uri=LAKE,
    )
    return f"{PREFIX}:flywheel/target-wheel"


def test_a_dataset_is_read_only_from_allowed_locations(server, admin, open_wheel):
    """No URL field reads outside TAGLOOP_ALLOWED_DATA_URLS, and every refusal says the same,
    whether the target exists or not."""
    inbox, root = server["inbox"], server["root"]
    link = inbox / "link.csv"
    if not link.exists():
        os.symlink(root / "private" / "secret.csv", link)
    attempts = [
        str(root / "private" / "secret.csv"),
        f"file://{root}/private/secret.csv",
        f"{inbox}/../private/secret.csv",
        str(link),  # a link inside the inbox to a file outside
        "/etc/passwd",
        "/no/such/file.csv",
        "private/secret.csv",  # relative
        "http://169.254.169.254/latest/meta-data/",
        "s3://other-bucket/data.csv",
        f"simplecache::file://{inbox}/tickets.csv",
        f"zip://tickets.csv::file://{inbox}/tickets.zip",
    ]
    before = rows(server, DocumentRow)
    messages = set()
    for number, uri in enumerate(attempts):
        kind, message = refused(
            admin.create_dataset,
            FlywheelArn=open_wheel,
            DatasetName=f"steal-{number}",
            InputDataConfig=dataset_config(uri),
        )
        assert kind == "InvalidRequestException", (uri, message)
        assert "not in an allowed data location" in message, (uri, message)
        messages.add(message.replace(repr(uri), "<uri>"))
    assert len(messages) == 1, messages  # nothing told about what lies there
    assert rows(server, DocumentRow) == before
    assert admin.list_datasets(FlywheelArn=open_wheel)["DatasetPropertiesList"] == []


def test_bad_flywheel_requests_get_comprehends_errors(server, admin, open_wheel):
    model = f"{PREFIX}:document-classifier/none/version/v1"
    common = {"DataAccessRoleArn": ROLE, "DataLakeS3Uri": LAKE}
    task = {"LanguageCode": "en", "DocumentClassificationConfig": {"Mode": "MULTI_CLASS"}}
    cases = [
        (admin.describe_flywheel, {"FlywheelArn": f"{PREFIX}:flywheel/nowhere"}, "ResourceNotFoundException"),
        (admin.describe_flywheel, {"FlywheelArn": "arn:aws:comprehend:x"}, "ValidationException"),
        (admin.delete_flywheel, {"FlywheelArn": f"{PREFIX}:flywheel/nowhere"}, "ResourceNotFoundException"),
        (
            admin.create_flywheel,
            {"FlywheelName": "w1", "ActiveModelArn": model, **common},
            "ResourceNotFoundException",
        ),
        (admin.create_flywheel, {"FlywheelName": "w2", **common}, "InvalidRequestException"),
        (
            admin.create_flywheel,
            {
                "FlywheelName": "w3",
                "ActiveModelArn": model,
                "TaskConfig": task,
                "ModelType": "DOCUMENT_CLASSIFIER",
                **common,
            },
            "InvalidRequestException",
        ),
        (
            admin.create_flywheel,
            {"FlywheelName": "w4", "TaskConfig": task, **common},
            "InvalidRequestException",
        ),
        (
            admin.create_flywheel,
            {"FlywheelName": "w5", "TaskConfig": task, "ModelType": "ENTITY_RECOGNIZER", **common},
            "InvalidRequestException",
        ),
        (
            admin.create_flywheel,
            {
                "FlywheelName": "w6",
                "TaskConfig": {
                    "LanguageCode": "en",
                    "EntityRecognitionConfig": {"EntityTypes": [{"Type": "X"}]},
                },
                "ModelType": "DOCUMENT_CLASSIFIER",
                **common,
            },
            "InvalidRequestException",
        ),
        (
            admin.create_flywheel,
            {
                "FlywheelName": "w7",
                "ActiveModelArn": f"{PREFIX}:entity-recognizer/names/version/v1",
                **common,
            },
            "InvalidRequestException",
        ),
        (
            admin.create_flywheel,
            {
                "FlywheelName": "w8",
                "TaskConfig": task,
                "ModelType": "DOCUMENT_CLASSIFIER",
                "DataAccessRoleArn": ROLE,
                "DataLakeS3Uri": "file:///etc/",
            },
            "ValidationException",
        ),
        (
            admin.create_flywheel,
            {"FlywheelName": "bad_name!", "TaskConfig": task, "ModelType": "DOCUMENT_CLASSIFIER", **common},
            "ValidationException",
        ),
        (
            admin.create_flywheel,
            {
                "FlywheelName": "w9",
                "TaskConfig": {
                    "LanguageCode": "en",
                    "DocumentClassificationConfig": {"Mode": "MULTI_CLASS", "Labels": ["A", "A"]},
                },
                "ModelType": "DOCUMENT_CLASSIFIER",
                **common,
            },
            "InvalidRequestException",
        ),
        (
            admin.create_flywheel,
            {
                "FlywheelName": "w10",
                "TaskConfig": {
                    "LanguageCode": "en",
                    "DocumentClassificationConfig": {"Mode": "MULTI_CLASS", "Labels": ["A", "B\x07"]},
                },
                "ModelType": "DOCUMENT_CLASSIFIER",
                **common,
            },
            "ValidationException",
        ),
        (
            admin.create_flywheel,
            {
                "FlywheelName": "w11",
                "TaskConfig": {
                    "LanguageCode": "en",
                    "DocumentClassificationConfig": {
                        "Mode": "MULTI_CLASS",
                        "Labels": [str(n) for n in range(1001)],
                    },
                },
                "ModelType": "DOCUMENT_CLASSIFIER",
                **common,
            },
            "ValidationException",
        ),
        (
            admin.create_flywheel,
            {
                "FlywheelName": "w12",
                "TaskConfig": task,
                "ModelType": "DOCUMENT_CLASSIFIER",
                "Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],
                **common,
            },
            "InvalidRequestException",
        ),
        (
            admin.update_flywheel,
            {"FlywheelArn": open_wheel, "ActiveModelArn": f"{PREFIX}:document-classifier/none"},
            "InvalidRequestException",
        ),
        (admin.describe_dataset, {"DatasetArn": f"{open_wheel}/dataset/none"}, "ResourceNotFoundException"),
        (
            admin.describe_dataset,
            {"DatasetArn": f"{PREFIX}:flywheel/nowhere/dataset/none"},
            "ResourceNotFoundException",
        ),
        (admin.list_datasets, {"FlywheelArn": f"{PREFIX}:flywheel/nowhere"}, "ResourceNotFoundException"),
        (
            admin.create_dataset,
            {
                "FlywheelArn": f"{PREFIX}:flywheel/nowhere",
                "DatasetName": "d",
                "InputDataConfig": dataset_config(f"{server['inbox']}/tickets.csv"),
            },
            "ResourceNotFoundException",
        ),
        (
            admin.create_dataset,
            {
                "FlywheelArn": open_wheel,
                "DatasetName": "d",
                "InputDataConfig": {
                    "DataFormat": "AUGMENTED_MANIFEST",
                    "AugmentedManifests": [{"AttributeNames": ["x"], "S3Uri": "s3://b/m"}],
                },
            },
            "InvalidRequestException",
        ),
        (
            admin.create_dataset,
            {"FlywheelArn": open_wheel, "DatasetName": "d", "InputDataConfig": {}},
            "InvalidRequestException",
        ),
        (
            admin.create_dataset,
            {
                "FlywheelArn": open_wheel,
                "DatasetName": "d",
                "InputDataConfig": dataset_config(f"{server['inbox']}/missing.csv"),
            },
            "InvalidRequestException",
        ),
        (admin.list_flywheels, {"MaxResults": 501}, "ValidationException"),
    ]
    for call, arguments, expected in cases:
        assert refused(call, **arguments)[0] == expected, (call.__name__, arguments)
    with server["tagloop"].database.reading() as session:
        names = set(session.scalars(select(LoopRow.name).where(LoopRow.name.is_not(None))))
    assert not names & {f"w{n}" for n in range(1, 13)}


def signed_post(server, target: str, body: bytes) -> httpx.Response:
    """A raw, correctly signed JSON 1.1 request: types boto3 would never send."""
    key = server["keys"]["admin"]
    request = AWSRequest(
        method="POST",
        url=f"{server['url']}/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"Comprehend_20171127.{target}",
        },
    )
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "comprehend", REGION).add_auth(request)
    return httpx.post(f"{server['url']}/", content=body, headers=dict(request.headers.items()))


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("CreateFlywheel", {"FlywheelName": 5, "DataAccessRoleArn": ROLE, "DataLakeS3Uri": LAKE}),
        (
            "CreateFlywheel",
            {"FlywheelName": "x", "DataAccessRoleArn": ROLE, "DataLakeS3Uri": LAKE, "TaskConfig": []},
        ),
        (
            "CreateFlywheel",
            {"FlywheelName": "x", "DataAccessRoleArn": ROLE, "DataLakeS3Uri": LAKE, "Tags": {"a": 1}},
        ),
        ("DescribeFlywheel", {"FlywheelArn": None}),
        ("DescribeFlywheel", {"FlywheelArn": ["x"]}),
        ("ListFlywheels", {"Filter": {"CreationTimeAfter": "yesterday"}}),
        ("ListFlywheels", {"Filter": {"CreationTimeAfter": 1e300}}),
        ("ListDatasets", {"Filter": {"CreationTimeAfter": -1e12}}),
        ("ListFlywheels", {"MaxResults": 2**40}),
        ("ListDatasets", {"Filter": {"DatasetType": "VALIDATION"}}),
        (
            "CreateDataset",
            {
                "FlywheelArn": f"{PREFIX}:flywheel/target-wheel",
                "DatasetName": "d",
                "InputDataConfig": {"DocumentClassifierInputDataConfig": {"S3Uri": "x\x00y"}},
            },
        ),
        (
            "CreateDataset",
            {
                "FlywheelArn": f"{PREFIX}:flywheel/target-wheel",
                "DatasetName": "d",
                "DatasetType": "TEST",
                "InputDataConfig": {
                    "DocumentClassifierInputDataConfig": {"S3Uri": "s3://b/k", "LabelDelimiter": "ab"}
                },
            },
        ),
        ("DescribeDataset", {"DatasetArn": f"{PREFIX}:flywheel/a/dataset/../b"}),
        (
            "StartFlywheelIteration",
            {"FlywheelArn": f"{PREFIX}:flywheel/target-wheel", "ClientRequestToken": "no spaces allowed"},
        ),
        (
            "DescribeFlywheelIteration",
            {"FlywheelArn": f"{PREFIX}:flywheel/target-wheel", "FlywheelIterationId": "yesterday"},
        ),
        ("ListFlywheelIterationHistory", {"FlywheelArn": f"{PREFIX}:flywheel/target-wheel", "NextToken": ""}),
    ],
)
def test_malformed_members_are_validation_errors(server, open_wheel, target, body):
    response = signed_post(server, target, json.dumps(body).encode())
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "ValidationException", response.text


def test_a_timestamp_before_year_one_is_refused_not_a_crash(server):
    body = {"Filter": {"CreationTimeBefore": -253402300799}}  # in the model's range, not in Python's
    response = signed_post(server, "ListFlywheels", json.dumps(body).encode())
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "InvalidRequestException", response.text


def test_the_readmes_flywheel_code_runs(server, admin):
    """The README's flywheel snippet, run as written against the server (only the dataset's
    location changed to one this server allows)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    code = readme.split("<!-- README-FLYWHEEL-START -->")[1].split("<!-- README-FLYWHEEL-END -->")[0]
    code = code.split("```python")[1].split("```")[0]
    assert "s3://bucket/march.csv" in code
    code = code.replace("s3://bucket/march.csv", str(server["inbox"] / "more.csv"))
    scope = {"comprehend": admin, "arn": trained(admin, server, "readme-desk"), "time": time}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["found"]["Status"] == "COMPLETED"
    properties = admin.describe_flywheel(FlywheelArn=scope["flywheel"])["FlywheelProperties"]
    assert properties["ActiveModelArn"] == scope["found"]["TrainedModelArn"]
