"""boto3's real `comprehend` client against a real tagloop server on a loopback port, in both
protocols: JSON 1.1 (what boto3 sends for Comprehend today) and Smithy RPC v2 CBOR (what AWS
moves services to; the same botocore client, given Comprehend's model with that protocol)."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import botocore.exceptions
import botocore.session
import cbor2
import httpx
import pytest
import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import insert

from tagloop.api.comprehend import ComprehendApi
from tagloop.api.server import create_app
from tagloop.errors import InvalidRequest
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.tables import JobRow, utcnow

ACCOUNT, REGION = "123456789012", "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tickets):
    """A tagloop server (with its job workers) on a free port, and keys of each scope."""
    root = tmp_path_factory.mktemp("comprehend")
    data = root / "tickets.csv"
    import csv

    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    app = create_app(Settings(data_dir=root / "data", endpoint_refresh_seconds=0.2))
    tagloop = app.state.tagloop
    keys = {scope: tagloop.keys.create(scope, scope) for scope in ("classify", "admin")}
    port = free_port()
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", keys, data
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def cbor_model_dir(tmp_path_factory):
    """A botocore data path holding Comprehend's model switched to the CBOR protocol."""
    loader = botocore.session.get_session().get_component("data_loader")
    model = copy.deepcopy(loader.load_service_model("comprehend", "service-2"))
    model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    root = tmp_path_factory.mktemp("botocore-data")
    folder = root / "comprehend" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model), encoding="utf-8")
    return root


@pytest.fixture(params=["json", "cbor"])
def protocol(request) -> str:
    return request.param


@pytest.fixture
def make_client(protocol, cbor_model_dir):
    """``make_client(url, key, secret=None)``: a boto3 comprehend client speaking ``protocol``."""

    def make(url: str, key: dict, secret: str | None = None):
        session = botocore.session.get_session()
        if protocol == "cbor":
            session.get_component("data_loader").search_paths.insert(0, str(cbor_model_dir))
        made = boto3.Session(botocore_session=session).client(
            "comprehend",
            endpoint_url=url,
            aws_access_key_id=key["access_key_id"],
            aws_secret_access_key=secret or key["secret"],
            region_name=REGION,
        )
        assert made.meta.service_model.protocol == ("smithy-rpc-v2-cbor" if protocol == "cbor" else "json")
        return made

    return make


def error_code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


def wait_trained(comprehend, arn: str) -> dict:
    deadline = time.monotonic() + 120
    while True:
        properties = comprehend.describe_document_classifier(DocumentClassifierArn=arn)[
            "DocumentClassifierProperties"
        ]
        if properties["Status"] in ("TRAINED", "IN_ERROR", "STOPPED"):
            return properties
        assert time.monotonic() < deadline, properties
        time.sleep(0.2)


def trained_classifier(comprehend, name: str, data) -> str:
    """The ARN of a classifier trained on ``data`` through the API (the test waits for it)."""
    arn = comprehend.create_document_classifier(
        DocumentClassifierName=name,
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        InputDataConfig={"S3Uri": f"file://{data}"},
        LanguageCode="en",
    )["DocumentClassifierArn"]
    assert wait_trained(comprehend, arn)["Status"] == "TRAINED"
    return arn


def wait_in_service(comprehend, arn: str) -> dict:
    """Poll DescribeEndpoint as Comprehend clients do, until the endpoint is IN_SERVICE."""
    deadline = time.monotonic() + 30
    while True:
        properties = comprehend.describe_endpoint(EndpointArn=arn)["EndpointProperties"]
        if properties["Status"] == "IN_SERVICE":
            return properties
        assert properties["Status"] in ("CREATING", "UPDATING"), properties
        assert time.monotonic() < deadline, properties
        time.sleep(0.05)


def test_full_flow_with_boto3(server, make_client, protocol):
    url, keys, data = server
    name = f"desk-{protocol}"
    admin = make_client(url, keys["admin"])
    arn = admin.create_document_classifier(
        DocumentClassifierName=name,
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        InputDataConfig={"DataFormat": "COMPREHEND_CSV", "S3Uri": f"file://{data}"},
        LanguageCode="en",
        Mode="MULTI_CLASS",
    )["DocumentClassifierArn"]
    assert arn == f"arn:aws:comprehend:{REGION}:{ACCOUNT}:document-classifier/{name}/version/v1"
    properties = wait_trained(admin, arn)
    assert properties["Status"] == "TRAINED"
    metadata = properties["ClassifierMetadata"]
    assert metadata["NumberOfLabels"] == 6
    assert metadata["NumberOfTrainedDocuments"] + metadata["NumberOfTestDocuments"] == 414
    assert set(metadata["EvaluationMetrics"]) >= {"Accuracy", "F1Score", "MicroF1Score", "HammingLoss"}
    assert isinstance(properties["SubmitTime"], datetime)
    listed = admin.list_document_classifiers(Filter={"Status": "TRAINED", "DocumentClassifierName": name})
    assert [p["DocumentClassifierArn"] for p in listed["DocumentClassifierPropertiesList"]] == [arn]

    endpoint_arn = admin.create_endpoint(EndpointName=name, ModelArn=arn, DesiredInferenceUnits=2)[
        "EndpointArn"
    ]
    assert endpoint_arn == f"arn:aws:comprehend:{REGION}:{ACCOUNT}:document-classifier-endpoint/{name}"
    described = wait_in_service(admin, endpoint_arn)
    assert (described["ModelArn"], described["DesiredModelArn"]) == (arn, arn)
    assert described["DesiredInferenceUnits"] == 2

    classify = make_client(url, keys["classify"])
    result = classify.classify_document(Text="the printer on floor 3 is jammed", EndpointArn=endpoint_arn)
    assert result["Classes"][0]["Name"] == "HARDWARE"
    scores = [c["Score"] for c in result["Classes"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)  # the best 3, as Comprehend
    assert 0.5 < sum(scores) <= 1 + 1e-6

    second = admin.create_document_classifier(
        DocumentClassifierName=name,
        VersionName="second",
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        InputDataConfig={"S3Uri": f"file://{data}"},
        LanguageCode="en",
    )["DocumentClassifierArn"]
    assert wait_trained(admin, second)["Status"] == "TRAINED"
    summaries = {
        summary["DocumentClassifierName"]: summary
        for summary in admin.list_document_classifier_summaries()["DocumentClassifierSummariesList"]
    }
    assert summaries[name]["NumberOfVersions"] == 2
    assert (summaries[name]["LatestVersionName"], summaries[name]["LatestVersionStatus"]) == (
        "second",
        "TRAINED",
    )
    assert isinstance(summaries[name]["LatestVersionCreatedAt"], datetime)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        admin.delete_document_classifier(DocumentClassifierArn=arn)  # served by the endpoint
    assert error_code(caught) == "ResourceInUseException"
    admin.update_endpoint(EndpointArn=endpoint_arn, DesiredModelArn=second)
    assert (
        admin.describe_endpoint(EndpointArn=endpoint_arn)["EndpointProperties"]["DesiredModelArn"] == second
    )
    assert wait_in_service(admin, endpoint_arn)["ModelArn"] == second
    admin.delete_document_classifier(DocumentClassifierArn=arn)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        admin.describe_document_classifier(DocumentClassifierArn=arn)
    assert error_code(caught) == "ResourceNotFoundException"
    pages = admin.list_endpoints(MaxResults=1)
    assert len(pages["EndpointPropertiesList"]) == 1
    admin.delete_endpoint(EndpointArn=endpoint_arn)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        classify.classify_document(Text="hello", EndpointArn=endpoint_arn)
    assert error_code(caught) == "ResourceNotFoundException"


def test_errors_in_comprehends_shape(server, make_client):
    url, keys, _ = server
    client = make_client
    endpoint = f"arn:aws:comprehend:{REGION}:{ACCOUNT}:document-classifier-endpoint/nowhere"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client(url, keys["classify"], secret="wrong" * 8).classify_document(Text="hi", EndpointArn=endpoint)
    assert error_code(caught) == "InvalidSignatureException"
    unknown = {"access_key_id": "TLUNKNOWNKEY00000000", "secret": "x"}
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client(url, unknown).classify_document(Text="hi", EndpointArn=endpoint)
    assert error_code(caught) == "UnrecognizedClientException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client(url, keys["classify"]).classify_document(Text="hi", EndpointArn=endpoint)
    assert error_code(caught) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client(url, keys["classify"]).classify_document(Text="x" * 100_001, EndpointArn=endpoint)
    assert error_code(caught) == "TextSizeLimitExceededException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client(url, keys["classify"]).list_endpoints()
    assert error_code(caught) == "AccessDeniedException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client(url, keys["admin"]).describe_document_classifier(
            DocumentClassifierArn=f"arn:aws:comprehend:{REGION}:{ACCOUNT}:document-classifier/none"
        )
    assert error_code(caught) == "ResourceNotFoundException"


def test_an_expired_signature_is_refused(server):
    url, keys, _ = server
    key = keys["admin"]
    request = AWSRequest(
        method="POST",
        url=f"{url}/",
        data=b"{}",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Comprehend_20171127.ListEndpoints",
        },
    )
    signer = SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "comprehend", REGION)
    old = datetime.now(UTC) - timedelta(minutes=10)
    request.context["timestamp"] = old.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    request.headers["Host"] = url.removeprefix("http://")
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    scope = f"{key['access_key_id']}/{old:%Y%m%d}/{REGION}/comprehend/aws4_request"
    signed = ";".join(signer.signed_headers(signer.headers_to_sign(request)).split(";"))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed}, Signature={signature}"
    )
    response = httpx.post(f"{url}/", content=b"{}", headers=dict(request.headers.items()))
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"
    assert "expired" in response.json()["message"]
    response = httpx.post(
        f"{url}/", content=b"{}", headers={"X-Amz-Target": "Comprehend_20171127.ListEndpoints"}
    )
    assert response.status_code == 403
    response = httpx.post(f"{url}/", content=b"{}", headers={"X-Amz-Target": "Other.Op"})
    assert response.json()["__type"] == "UnknownOperationException"


def test_batch_classification_jobs_with_boto3(server, tmp_path, make_client, protocol):
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    arn = trained_classifier(admin, f"batchdesk-{protocol}", data)
    source = tmp_path / "in.txt"
    source.write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    started = admin.start_document_classification_job(
        JobName=f"nightly-{protocol}",
        DocumentClassifierArn=arn,
        InputDataConfig={"S3Uri": str(source), "InputFormat": "ONE_DOC_PER_LINE"},
        OutputDataConfig={"S3Uri": str(tmp_path / "out")},
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
    )
    assert started["JobStatus"] == "SUBMITTED"
    deadline = time.monotonic() + 60
    while True:
        job = admin.describe_document_classification_job(JobId=started["JobId"])[
            "DocumentClassificationJobProperties"
        ]
        if job["JobStatus"] in ("COMPLETED", "FAILED", "STOPPED"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job["JobStatus"] == "COMPLETED", job
    assert job["JobName"] == f"nightly-{protocol}" and job["DocumentClassifierArn"] == arn
    from pathlib import Path

    assert (Path(job["OutputDataConfig"]["S3Uri"]) / "manifest.json").exists()
    listed = admin.list_document_classification_jobs(Filter={"JobName": f"nightly-{protocol}"})
    assert [j["JobId"] for j in listed["DocumentClassificationJobPropertiesList"]] == [started["JobId"]]
    finished = signed_call(url, keys["admin"], "StopDocumentClassificationJob", {"JobId": started["JobId"]})
    assert (finished.status_code, finished.json()["__type"]) == (400, "InvalidRequestException")


def test_classification_jobs_page_through_boto3s_paginator(server, tmp_path, make_client, protocol):
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    arn = trained_classifier(admin, f"pagedesk-{protocol}", data)
    source = tmp_path / "in.txt"
    source.write_text("printer jammed\n", encoding="utf-8")
    started = [
        admin.start_document_classification_job(
            JobName=f"paged-{protocol}",
            DocumentClassifierArn=arn,
            InputDataConfig={"S3Uri": str(source), "InputFormat": "ONE_DOC_PER_LINE"},
            OutputDataConfig={"S3Uri": str(tmp_path / "out")},
            DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        )["JobId"]
        for _ in range(3)
    ]
    pages = list(
        admin.get_paginator("list_document_classification_jobs").paginate(
            Filter={"JobName": f"paged-{protocol}"}, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(page["DocumentClassificationJobPropertiesList"]) for page in pages] == [2, 1]
    listed = [job["JobId"] for page in pages for job in page["DocumentClassificationJobPropertiesList"]]
    assert listed == started[::-1]  # newest first, each once, the NextToken carried by boto3


def test_cbor_errors_come_back_in_cbor(server):
    url, _, _ = server
    base = f"{url}/service/Comprehend_20171127/operation"
    headers = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"}
    response = httpx.post(f"{base}/ListEndpoints", content=cbor2.dumps({}), headers=headers)
    assert response.status_code == 403
    assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert response.headers["content-type"] == "application/cbor"
    assert cbor2.loads(response.content)["__type"] == "MissingAuthenticationTokenException"


def signed_call(url: str, key: dict, operation: str, body: dict) -> httpx.Response:
    """A JSON 1.1 call signed like boto3 signs one, for an operation boto3's model lacks."""
    request = AWSRequest(
        method="POST",
        url=f"{url}/",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"Comprehend_20171127.{operation}",
        },
    )
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "comprehend", REGION).add_auth(request)
    return httpx.post(f"{url}/", content=request.body, headers=dict(request.headers.items()))


def test_stopping_classification_jobs(server, tmp_path, make_client, protocol):
    """Comprehend itself has no StopDocumentClassificationJob (boto3's model lacks it); tagloop
    takes it, in Comprehend's conventions, for batch jobs that should not run to the end."""
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    arn = trained_classifier(admin, f"stopdesk-{protocol}", data)
    source = tmp_path / "many.txt"
    source.write_text("the printer on floor 3 is jammed again\n" * 200_000, encoding="utf-8")
    job_id = admin.start_document_classification_job(
        DocumentClassifierArn=arn,
        InputDataConfig={"S3Uri": str(source), "InputFormat": "ONE_DOC_PER_LINE"},
        OutputDataConfig={"S3Uri": str(tmp_path / "out")},
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
    )["JobId"]
    stopped = signed_call(url, keys["admin"], "StopDocumentClassificationJob", {"JobId": job_id})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["JobId"] == job_id
    assert stopped.json()["JobStatus"] in ("STOP_REQUESTED", "STOPPED")
    deadline = time.monotonic() + 60
    while True:
        status = admin.describe_document_classification_job(JobId=job_id)[
            "DocumentClassificationJobProperties"
        ]["JobStatus"]
        if status == "STOPPED":
            break
        assert status == "STOP_REQUESTED" and time.monotonic() < deadline, status
        time.sleep(0.1)
    again = signed_call(url, keys["admin"], "StopDocumentClassificationJob", {"JobId": job_id})
    assert again.json()["JobStatus"] == "STOPPED"  # stopping twice is harmless
    missing = signed_call(url, keys["admin"], "StopDocumentClassificationJob", {"JobId": "no-such-job"})
    assert (missing.status_code, missing.json()["__type"]) == (400, "JobNotFoundException")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        admin.describe_document_classification_job(JobId="no-such-job")
    assert error_code(caught) == "JobNotFoundException"


# ---- operations called in process, on each database -----------------------------------------


def add_newer_jobs(tagloop, count: int) -> None:
    """``count`` finished jobs of another kind, all newer than every job so far."""
    rows = [
        dict(id=uuid.uuid4().hex, kind="other", status="COMPLETED", payload={}, created_at=utcnow())
        for _ in range(count)
    ]
    with tagloop.database.transaction() as session:
        session.execute(insert(JobRow), rows)


def test_stop_training_finds_the_job_of_its_version_past_a_thousand_newer_jobs(
    make_tagloop, database_url, tickets_csv
):
    tagloop = make_tagloop(database_url=database_url)
    api = ComprehendApi(tagloop)
    arn = api.CreateDocumentClassifier(
        {"DocumentClassifierName": "desk", "InputDataConfig": {"S3Uri": str(tickets_csv)}}
    )["DocumentClassifierArn"]
    add_newer_jobs(tagloop, 1_001)
    unversioned = arn.split("/version/")[0]  # the classifier's newest version
    assert api.StopTrainingDocumentClassifier({"DocumentClassifierArn": unversioned}) == {}
    described = api.DescribeDocumentClassifier({"DocumentClassifierArn": arn})
    assert described["DocumentClassifierProperties"]["Status"] == "STOPPED"
    assert api.StopTrainingDocumentClassifier({"DocumentClassifierArn": arn}) == {}  # harmless again


def test_classification_jobs_are_listed_a_page_at_a_time(make_tagloop, database_url, tickets_csv, tmp_path):
    tagloop = make_tagloop(database_url=database_url)
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    api = ComprehendApi(tagloop)
    arn = api.arns.classifier("desk", "v1")
    source = tmp_path / "in.txt"
    source.write_text("printer jammed\n", encoding="utf-8")

    def start(name: str) -> str:
        return api.StartDocumentClassificationJob(
            {
                "JobName": name,
                "DocumentClassifierArn": arn,
                "InputDataConfig": {"S3Uri": str(source)},
                "OutputDataConfig": {"S3Uri": str(tmp_path / "out")},
            }
        )["JobId"]

    nightly = [start("nightly") for _ in range(5)]
    weekly = [start("weekly") for _ in range(2)]
    for job_id in nightly[:2]:
        tagloop.jobs.stop(job_id)
    assert tagloop.queue.run_until_idle() >= 5  # the others run: their shards are jobs too

    def listed(size: int, **wanted: str) -> list[str]:
        ids: list[str] = []
        body: dict = {"MaxResults": size} | ({"Filter": wanted} if wanted else {})
        while True:
            answer = api.ListDocumentClassificationJobs(body)
            page = answer["DocumentClassificationJobPropertiesList"]
            assert 1 <= len(page) <= size or ids == [] == page
            ids += [job["JobId"] for job in page]
            if "NextToken" not in answer:
                return ids
            body = body | {"NextToken": answer["NextToken"]}

    everything = (nightly + weekly)[::-1]
    assert listed(2) == listed(100) == everything
    assert listed(3, JobName="nightly") == nightly[::-1]
    assert listed(1, JobStatus="STOPPED") == nightly[1::-1]
    assert listed(2, JobName="nightly", JobStatus="COMPLETED") == nightly[:1:-1]
    assert listed(2, JobName="monthly") == []
    jobs = {job_id: api.DescribeDocumentClassificationJob({"JobId": job_id}) for job_id in everything}
    first = api.ListDocumentClassificationJobs({"MaxResults": 1})["DocumentClassificationJobPropertiesList"]
    assert first == [jobs[everything[0]]["DocumentClassificationJobProperties"]]
    for body, message in (
        ({"MaxResults": 501}, "MaxResults"),
        ({"NextToken": "bm90IGEgdG9rZW4="}, "page token"),
    ):
        with pytest.raises(InvalidRequest, match=message):
            api.ListDocumentClassificationJobs(body)
