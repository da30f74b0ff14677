"""boto3's real `comprehend` client against a real tagloop server on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import botocore.exceptions
import httpx
import pytest
import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tagloop.api.server import create_app
from tagloop.settings import Settings

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


def client(url: str, key: dict, secret: str | None = None):
    return boto3.client(
        "comprehend",
        endpoint_url=url,
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=secret or key["secret"],
        region_name=REGION,
    )


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


def test_full_flow_with_boto3(server):
    url, keys, data = server
    admin = client(url, keys["admin"])
    arn = admin.create_document_classifier(
        DocumentClassifierName="desk",
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        InputDataConfig={"DataFormat": "COMPREHEND_CSV", "S3Uri": f"file://{data}"},
        LanguageCode="en",
        Mode="MULTI_CLASS",
    )["DocumentClassifierArn"]
    assert arn == f"arn:aws:comprehend:{REGION}:{ACCOUNT}:document-classifier/desk/version/v1"
    properties = wait_trained(admin, arn)
    assert properties["Status"] == "TRAINED"
    metadata = properties["ClassifierMetadata"]
    assert metadata["NumberOfLabels"] == 6
    assert metadata["NumberOfTrainedDocuments"] + metadata["NumberOfTestDocuments"] == 414
    assert set(metadata["EvaluationMetrics"]) >= {"Accuracy", "F1Score", "MicroF1Score", "HammingLoss"}
    assert isinstance(properties["SubmitTime"], datetime)
    listed = admin.list_document_classifiers(Filter={"Status": "TRAINED"})["DocumentClassifierPropertiesList"]
    assert [p["DocumentClassifierArn"] for p in listed] == [arn]

    endpoint_arn = admin.create_endpoint(EndpointName="desk", ModelArn=arn, DesiredInferenceUnits=2)[
        "EndpointArn"
    ]
    assert endpoint_arn == f"arn:aws:comprehend:{REGION}:{ACCOUNT}:document-classifier-endpoint/desk"
    described = admin.describe_endpoint(EndpointArn=endpoint_arn)["EndpointProperties"]
    assert (described["Status"], described["DesiredInferenceUnits"]) == ("IN_SERVICE", 2)

    classify = client(url, keys["classify"])
    result = classify.classify_document(Text="the printer on floor 3 is jammed", EndpointArn=endpoint_arn)
    assert result["Classes"][0]["Name"] == "HARDWARE"
    assert abs(sum(c["Score"] for c in result["Classes"]) - 1) < 1e-6

    second = admin.create_document_classifier(
        DocumentClassifierName="desk",
        VersionName="second",
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        InputDataConfig={"S3Uri": f"file://{data}"},
        LanguageCode="en",
    )["DocumentClassifierArn"]
    assert wait_trained(admin, second)["Status"] == "TRAINED"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        admin.delete_document_classifier(DocumentClassifierArn=arn)  # served by the endpoint
    assert error_code(caught) == "ResourceInUseException"
    admin.update_endpoint(EndpointArn=endpoint_arn, DesiredModelArn=second)
    assert admin.describe_endpoint(EndpointArn=endpoint_arn)["EndpointProperties"]["ModelArn"] == second
    admin.delete_document_classifier(DocumentClassifierArn=arn)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        admin.describe_document_classifier(DocumentClassifierArn=arn)
    assert error_code(caught) == "ResourceNotFoundException"
    pages = admin.list_endpoints(MaxResults=1)
    assert len(pages["EndpointPropertiesList"]) == 1 and "NextToken" not in pages
    admin.delete_endpoint(EndpointArn=endpoint_arn)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        classify.classify_document(Text="hello", EndpointArn=endpoint_arn)
    assert error_code(caught) == "ResourceNotFoundException"


def test_errors_in_comprehends_shape(server):
    url, keys, _ = server
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


def test_batch_classification_jobs_with_boto3(server, tmp_path):
    url, keys, data = server
    admin = client(url, keys["admin"])
    arn = admin.create_document_classifier(
        DocumentClassifierName="batchdesk",
        DataAccessRoleArn=f"arn:aws:iam::{ACCOUNT}:role/comprehend",
        InputDataConfig={"S3Uri": f"file://{data}"},
        LanguageCode="en",
    )["DocumentClassifierArn"]
    assert wait_trained(admin, arn)["Status"] == "TRAINED"
    source = tmp_path / "in.txt"
    source.write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    started = admin.start_document_classification_job(
        JobName="nightly",
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
    assert job["JobName"] == "nightly" and job["DocumentClassifierArn"] == arn
    from pathlib import Path

    assert (Path(job["OutputDataConfig"]["S3Uri"]) / "manifest.json").exists()
    listed = admin.list_document_classification_jobs(Filter={"JobName": "nightly"})
    assert [j["JobId"] for j in listed["DocumentClassificationJobPropertiesList"]] == [started["JobId"]]
