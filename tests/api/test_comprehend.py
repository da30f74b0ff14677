"""boto3's real `comprehend` client against a real tagloop server on a loopback port, in both
protocols: JSON 1.1 (what boto3 sends for Comprehend today) and Smithy RPC v2 CBOR (what AWS
moves services to; the same botocore client, given Comprehend's model with that protocol)."""

from __future__ import annotations

import ast
import copy
import json
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.exceptions
import botocore.session
import cbor2
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.testclient import TestClient
from sqlalchemy import select

from tagloop.api.coalesce import Coalescer
from tagloop.api.comprehend import ComprehendApi
from tagloop.api.server import create_app
from tagloop.domain.records import Mode
from tagloop.errors import InvalidRequest
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.tables import PredictionRow

ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture(scope="module")
def server_root(tmp_path_factory) -> Path:
    """The server's folder: its data dir, and ``inbox/``, the one data location its APIs may use."""
    root = tmp_path_factory.mktemp("comprehend")
    (root / "inbox").mkdir()
    return root


@pytest.fixture
def inbox(server_root) -> Path:
    """A fresh folder of this test's own inside the server's allowed data location."""
    return Path(tempfile.mkdtemp(dir=server_root / "inbox"))


@pytest.fixture(scope="module")
def server(server_root, tickets, serve_in_thread):
    """A tagloop server (with its job workers) on a free port, and keys of each scope."""
    root = server_root
    data = root / "inbox" / "tickets.csv"
    import csv

    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    settings = Settings(
        data_dir=root / "data", endpoint_refresh_seconds=0.2, allowed_data_urls=(f"file://{root}/inbox/",)
    )
    app = create_app(settings)
    tagloop = app.state.tagloop
    keys = {scope: tagloop.keys.create(scope, scope) for scope in ("classify", "admin")}
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}", keys, data


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
    # Comprehend has no classifier without a version: deleting the last one deletes the classifier
    admin.delete_document_classifier(DocumentClassifierArn=second)
    listed = admin.list_document_classifier_summaries()["DocumentClassifierSummariesList"]
    assert name not in [summary["DocumentClassifierName"] for summary in listed]


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


def test_batch_classification_jobs_with_boto3(server, inbox, make_client, protocol, capsys):
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    arn = trained_classifier(admin, f"batchdesk-{protocol}", data)
    source = inbox / "in.txt"
    source.write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    started = admin.start_document_classification_job(
        JobName=f"nightly-{protocol}",
        DocumentClassifierArn=arn,
        InputDataConfig={"S3Uri": str(source), "InputFormat": "ONE_DOC_PER_LINE"},
        OutputDataConfig={"S3Uri": str(inbox / "out")},
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
    assert "FlywheelArn" not in job  # started on a model, not a flywheel
    # where Comprehend puts it; read as code written for Comprehend reads it: download, untar, lines
    output = job["OutputDataConfig"]["S3Uri"]
    assert output == f"{inbox}/out/{ACCOUNT}-CLN-{started['JobId']}/output/output.tar.gz"
    downloaded = inbox / "downloaded.tar.gz"
    downloaded.write_bytes(Path(output).read_bytes())
    with tarfile.open(downloaded, "r:gz") as tar:
        tar.extractall(inbox / "untarred", filter="data")
    assert sorted(path.name for path in (inbox / "untarred").iterdir()) == ["predictions.jsonl"]
    with (inbox / "untarred" / "predictions.jsonl").open(encoding="utf-8") as lines:
        predictions = [json.loads(line) for line in lines]
    assert [(p["File"], p["Line"]) for p in predictions] == [("in.txt", 0), ("in.txt", 1)]
    assert [p["Classes"][0]["Name"] for p in predictions] == ["HARDWARE", "BILLING"]
    assert all(set(entry) == {"Name", "Score"} for p in predictions for entry in p["Classes"])
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")  # its snippet runs
    code = readme.split("<!-- README-OUTPUT-START -->")[1].split("<!-- README-OUTPUT-END -->")[0]
    code = code.strip().removeprefix("```python").removesuffix("```")
    exec(compile(code, "README.md", "exec"), {"comprehend": admin, "job_id": started["JobId"]})
    printed = capsys.readouterr().out.splitlines()
    assert [ast.literal_eval(line)["Name"] for line in printed] == ["HARDWARE", "BILLING"]  # dicts printed
    listed = admin.list_document_classification_jobs(Filter={"JobName": f"nightly-{protocol}"})
    assert [j["JobId"] for j in listed["DocumentClassificationJobPropertiesList"]] == [started["JobId"]]
    finished = signed_call(url, keys["admin"], "StopDocumentClassificationJob", {"JobId": started["JobId"]})
    assert (finished.status_code, finished.json()["__type"]) == (400, "InvalidRequestException")


def test_classification_jobs_page_through_boto3s_paginator(server, server_root, make_client, protocol):
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    arn = trained_classifier(admin, f"pagedesk-{protocol}", data)
    tmp_path = server_root / "inbox" / f"paged-{protocol}"  # inside the allowed data locations
    tmp_path.mkdir()
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


def test_stopping_classification_jobs(server, inbox, make_client, protocol):
    """Comprehend itself has no StopDocumentClassificationJob (boto3's model lacks it); tagloop
    takes it, in Comprehend's conventions, for batch jobs that should not run to the end."""
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    arn = trained_classifier(admin, f"stopdesk-{protocol}", data)
    source = inbox / "many.txt"
    source.write_text("the printer on floor 3 is jammed again\n" * 200_000, encoding="utf-8")
    job_id = admin.start_document_classification_job(
        DocumentClassifierArn=arn,
        InputDataConfig={"S3Uri": str(source), "InputFormat": "ONE_DOC_PER_LINE"},
        OutputDataConfig={"S3Uri": str(inbox / "out")},
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


# ---- data locations: the API reads and writes only inside the allowlist (issue 11, findings 1-3) ----

REFUSED = "{field} {url!r} is not in an allowed data location (setting TAGLOOP_ALLOWED_DATA_URLS)"


@pytest.fixture(scope="module")
def outside(server, server_root, tickets):
    """Files and folders the server can read but its APIs must not reach, and links to them."""
    url, _, _ = server
    root = server_root
    import csv

    secret = root / "secret.csv"  # valid training data, outside the allowlist
    with secret.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    (root / "inbox2").mkdir()  # a sibling whose name starts with the allowed folder's
    (root / "inbox2" / "tickets.csv").write_bytes(secret.read_bytes())
    (root / "outside").mkdir()
    links = root / "inbox" / "links"
    links.mkdir()
    (links / "secret.csv").symlink_to(secret)
    (links / "passwd").symlink_to("/etc/passwd")
    (links / "etc").symlink_to("/etc")
    (links / "outside").symlink_to(root / "outside")
    (links / "gone.csv").symlink_to(root / "no-such-file.csv")
    return {"root": root, "server": url}


def refused_locations(root: Path, server_url: str) -> list[str]:
    """Every way of naming a location outside ``<root>/inbox/``: existing, missing and folders
    alike, local paths, escapes and other protocols."""
    inbox = root / "inbox"
    return [
        "/etc/passwd",
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "file://localhost/etc/passwd",
        "/etc/shadow",
        "/etc/no-such-file",
        "/etc",
        "/etc/",
        str(root / "secret.csv"),
        f"file://{root}/secret.csv",
        f"{inbox}/../secret.csv",
        f"file://{inbox}/../secret.csv",
        f"{inbox}/../no-such-file.csv",
        f"{inbox}/./../secret.csv",
        f"{inbox}/links/secret.csv",  # a link inside the allowed folder, to a file outside
        f"{inbox}/links/passwd",
        f"{inbox}/links/etc/passwd",
        f"{inbox}/links/gone.csv",
        f"{root}/inbox2/tickets.csv",  # a sibling folder whose name starts with the allowed one's
        f"file://{root}/inbox2/tickets.csv",
        f"{root}/inbox2",
        "inbox/tickets.csv",  # relative to wherever the server runs
        "~/.ssh/id_rsa",
        "ftp://127.0.0.1/tickets.csv",
        f"{server_url}/healthz",
        "https://example.com/tickets.csv",
        "webhdfs://127.0.0.1:9870/tickets.csv",
        "github://tagloop:tagloop@/README.md",
        "data:text/plain;base64,QSxiCkIsYwo=",
        f"zip://tickets.csv::file://{inbox}/tickets.zip",
        f"simplecache::file://{inbox}/tickets.csv",
        f"file://{inbox}/tickets.csv::",
        "memory://tickets.csv",
        "s3://bucket/tickets.csv",
    ]


def test_create_document_classifier_reads_only_allowed_locations(server, outside, make_client, protocol):
    """Finding 1 and 3: a local path outside the allowlist, a link out of it, and every other
    protocol are refused before anything is opened, each with the same message, whether the
    target exists, is missing or is a folder."""
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    name = f"guarded-{protocol}"
    for location in refused_locations(outside["root"], outside["server"]):
        for field, config in (
            ("InputDataConfig.S3Uri", {"S3Uri": location}),
            ("InputDataConfig.TestS3Uri", {"S3Uri": f"file://{data}", "TestS3Uri": location}),
        ):
            with pytest.raises(botocore.exceptions.ClientError) as caught:
                admin.create_document_classifier(
                    DocumentClassifierName=name,
                    DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
                    InputDataConfig=config,
                    LanguageCode="en",
                )
            error = caught.value.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 400, location
            assert error["Error"]["Code"] == "InvalidRequestException", location
            assert error["Error"]["Message"] == REFUSED.format(field=field, url=location)
    assert (
        admin.list_document_classifiers(Filter={"DocumentClassifierName": name})[
            "DocumentClassifierPropertiesList"
        ]
        == []
    )


def test_an_allowed_location_is_read_by_its_real_path(server, inbox, make_client, protocol):
    """A link inside the allowed folder to a file inside it is fine; the version records (and
    training read) the real path that was checked, not the link."""
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    (inbox / "latest.csv").symlink_to(data)
    arn = admin.create_document_classifier(
        DocumentClassifierName=f"linked-{protocol}",
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        InputDataConfig={"S3Uri": f"file://{inbox}/latest.csv"},
        LanguageCode="en",
    )["DocumentClassifierArn"]
    properties = wait_trained(admin, arn)
    assert properties["Status"] == "TRAINED"
    assert properties["InputDataConfig"]["S3Uri"] == f"file://{data}"


def test_rejected_rows_are_named_by_line_not_quoted(server, inbox):
    """Errors about rejected rows give line numbers and reasons, and quote no more of a row than
    the reason needs (a cut label), never the line."""
    url, keys, _ = server
    secret = "root:x:0:0:the quick brown fox jumps over the lazy dog:/root:/bin/bash|" + "s" * 200
    source = inbox / "bad.csv"
    source.write_text(f"{secret},some text\nBILLING,refund please\n", encoding="utf-8")
    response = signed_call(
        url,
        keys["admin"],
        "CreateDocumentClassifier",
        {
            "DocumentClassifierName": "quoting",
            "DataAccessRoleArn": f"arn:aws:iam::{ACCOUNT}:role/comprehend",
            "InputDataConfig": {"S3Uri": str(source)},
            "LanguageCode": "en",
        },
    )
    assert (response.status_code, response.json()["__type"]) == (400, "InvalidRequestException")
    message = response.json()["message"]
    assert "1 row rejected (line 1: label 'root:x:0:0:" in message
    assert "multi-label delimiter" in message
    assert secret not in message and "s" * 60 not in message
    assert len(message) < 400


def test_batch_jobs_read_and_write_only_allowed_locations(server, outside, inbox):
    """Finding 2 and 3: StartDocumentClassificationJob reads its input and writes its output only
    inside the allowlist; a refused output folder is left untouched."""
    url, keys, data = server
    admin = boto3.client(
        "comprehend",
        endpoint_url=url,
        aws_access_key_id=keys["admin"]["access_key_id"],
        aws_secret_access_key=keys["admin"]["secret"],
        region_name=REGION,
    )
    arn = trained_classifier(admin, "guarded-batch", data)
    root = outside["root"]
    source = inbox / "in.txt"
    source.write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    (inbox / "docs").mkdir()
    (inbox / "docs" / "a.txt").write_text("printer jammed\n", encoding="utf-8")
    (inbox / "docs" / "passwd.txt").symlink_to("/etc/passwd")  # a link in an allowed input folder

    def start(input_url: str, output_url: str) -> httpx.Response:
        return signed_call(
            url,
            keys["admin"],
            "StartDocumentClassificationJob",
            {
                "DocumentClassifierArn": arn,
                "InputDataConfig": {"S3Uri": input_url, "InputFormat": "ONE_DOC_PER_LINE"},
                "OutputDataConfig": {"S3Uri": output_url},
                "DataAccessRoleArn": f"arn:aws:iam::{ACCOUNT}:role/comprehend",
            },
        )

    for location in refused_locations(root, outside["server"]):
        refused = start(location, str(inbox / "out"))
        assert (refused.status_code, refused.json()["__type"]) == (400, "InvalidRequestException")
        assert refused.json()["message"] == REFUSED.format(field="InputDataConfig.S3Uri", url=location)
    outputs = [
        *refused_locations(root, outside["server"]),
        str(root / "outside"),
        f"{inbox}/../../outside",
        f"{root}/inbox/links/outside",
        f"{root}/inbox/links/outside/deeper",
        "/tmp",
        "/",
    ]
    for location in outputs:
        refused = start(str(source), location)
        assert (refused.status_code, refused.json()["__type"]) == (400, "InvalidRequestException")
        assert refused.json()["message"] == REFUSED.format(field="OutputDataConfig.S3Uri", url=location)
    assert list((root / "outside").iterdir()) == []
    refused = start(str(inbox / "docs"), str(inbox / "out"))
    assert refused.status_code == 400
    assert refused.json()["message"] == REFUSED.format(
        field="batch input", url=f"file://{inbox}/docs/passwd.txt"
    )
    jobs = admin.list_document_classification_jobs()["DocumentClassificationJobPropertiesList"]
    assert [job for job in jobs if job["DocumentClassifierArn"] == arn] == []  # none was started

    started = start(f"file://{source}", f"{inbox}/out/")
    assert started.status_code == 200, started.text
    job_id = started.json()["JobId"]
    deadline = time.monotonic() + 60
    while True:
        job = admin.describe_document_classification_job(JobId=job_id)["DocumentClassificationJobProperties"]
        if job["JobStatus"] in ("COMPLETED", "FAILED", "STOPPED"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job["JobStatus"] == "COMPLETED", job
    assert job["InputDataConfig"]["S3Uri"] == f"file://{source}"
    assert job["OutputDataConfig"]["S3Uri"] == f"{inbox}/out/{ACCOUNT}-CLN-{job_id}/output/output.tar.gz"
    assert (inbox / "out" / f"{ACCOUNT}-CLN-{job_id}" / "output" / "output.tar.gz").exists()


def test_classify_document_resolves_an_endpoint_not_in_memory_then_scores_as_usual(tmp_path, write_csv):
    """One ClassifyDocument path: an endpoint this process does not know yet is resolved on a
    worker thread, then the text is scored through the coalescer, as for an endpoint in memory;
    a multi-label model answers ``Labels``, and the prediction is logged as it answers."""
    rows = []
    for i in range(40):
        rows.append(["NET|HW", f"the router {i} and the laptop dock {i} both fail"])
        rows.append(["NET", f"the vpn tunnel {i} drops"])
        rows.append(["HW", f"the keyboard {i} is broken"])
    settings = Settings(data_dir=tmp_path / "data", auth=False)
    trainer = create_app(settings, start_workers=False).state.tagloop
    trainer.training.train(TrainRequest(classifier="ml", data=str(write_csv(rows)), mode=Mode.MULTI_LABEL))
    trainer.queue.run_now(trainer.endpoints.create("ml", "ml", "v1")["job_id"])
    trainer.close()
    app = create_app(settings, start_workers=False)  # another server process: knows no endpoint yet
    tagloop = app.state.tagloop
    batches: list[int] = []
    app.state.coalescer.observe = batches.append
    arn = f"arn:aws:comprehend:{REGION}:{ACCOUNT}:document-classifier-endpoint/ml"
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "Comprehend_20171127.ClassifyDocument",
    }
    body = json.dumps({"Text": "the router and the dock both fail", "EndpointArn": arn})
    with TestClient(
        app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000)
    ) as client:  # no-auth: loopback
        assert tagloop.endpoints.cached("ml") is None
        first = client.post("/", content=body, headers=headers)
        assert first.status_code == 200, first.text
        assert tagloop.endpoints.cached("ml") is not None
        second = client.post("/", content=body, headers=headers)
        assert second.status_code == 200, second.text
        tagloop.prediction_log.close()  # flush
        with tagloop.database.reading() as session:
            results = [row.result for row in session.scalars(select(PredictionRow))]
    assert first.json() == second.json()
    assert list(first.json()) == ["Labels"]
    assert {label["Name"] for label in first.json()["Labels"]} == {"HW", "NET"}
    assert batches == [1, 1]  # both scored through the coalescer
    assert results == [first.json(), second.json()]


# ---- operations called in process, on each database -----------------------------------------


def test_stop_training_finds_the_job_of_its_version_past_a_thousand_newer_jobs(
    make_tagloop, database_url, tickets_csv, add_newer_jobs
):
    tagloop = make_tagloop(database_url=database_url, allowed_data_urls=(f"file://{tickets_csv.parent}/",))
    api = ComprehendApi(tagloop, Coalescer(tagloop.predictions.classify))
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
    tagloop = make_tagloop(database_url=database_url, allowed_data_urls=(f"file://{tmp_path}/",))
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    api = ComprehendApi(tagloop, Coalescer(tagloop.predictions.classify))
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


def test_a_retried_create_or_start_with_its_client_request_token_answers_as_the_first(
    server, inbox, make_client, protocol
):
    """boto3 sends the same ClientRequestToken again when it retries a call (timeout, dropped
    connection): the retry gets the first answer, not a second job or "already exists"."""
    url, keys, data = server
    admin = make_client(url, keys["admin"])
    arn = trained_classifier(admin, f"tokens-{protocol}", data)
    source = inbox / "in.txt"
    source.write_text("printer jammed\n", encoding="utf-8")
    job = {
        "DocumentClassifierArn": arn,
        "InputDataConfig": {"S3Uri": str(source), "InputFormat": "ONE_DOC_PER_LINE"},
        "OutputDataConfig": {"S3Uri": str(inbox / "out")},
        "DataAccessRoleArn": f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        "ClientRequestToken": f"job-{protocol}-1",
    }
    first = admin.start_document_classification_job(**job)
    again = admin.start_document_classification_job(**job)
    assert again["JobId"] == first["JobId"]
    listed = admin.list_document_classification_jobs()["DocumentClassificationJobPropertiesList"]
    assert [j["JobId"] for j in listed].count(first["JobId"]) == 1
    other = admin.start_document_classification_job(**job | {"ClientRequestToken": f"job-{protocol}-2"})
    assert other["JobId"] != first["JobId"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:  # the same token for another request
        admin.start_document_classification_job(**job | {"JobName": "another"})
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"

    endpoint = {
        "EndpointName": f"tokens-{protocol}",
        "ModelArn": arn,
        "DesiredInferenceUnits": 1,
        "ClientRequestToken": f"endpoint-{protocol}",
    }
    created = admin.create_endpoint(**endpoint)
    assert admin.create_endpoint(**endpoint)["EndpointArn"] == created["EndpointArn"]
    with pytest.raises(
        botocore.exceptions.ClientError
    ) as exists:  # a new request (boto3's fresh token) for the name
        admin.create_endpoint(**{k: v for k, v in endpoint.items() if k != "ClientRequestToken"})
    assert exists.value.response["Error"]["Code"] == "ResourceInUseException"
    wait_in_service(admin, created["EndpointArn"])
    admin.delete_endpoint(EndpointArn=created["EndpointArn"])
