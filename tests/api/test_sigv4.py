"""SigV4 as AWS checks it, against a real tagloop server on a loopback port: requests signed
by botocore's own signer (``SigV4Auth``), then sent as they were signed, or changed the
ways an attacker who captured one would change them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tagloop.api.server import create_app
from tagloop.api.sigv4 import access_key_id
from tagloop.errors import InvalidSignature, MissingAuthentication
from tagloop.settings import Settings

REGION = "us-east-1"
TARGET = "Comprehend_20171127."
JSON = "application/x-amz-json-1.1"
NOWHERE = "arn:aws:comprehend:us-east-1:123456789012:document-classifier-endpoint/nowhere"


@contextmanager
def running(serve_in_thread, settings: Settings) -> Iterator[tuple[str, dict]]:
    """A tagloop server on a free loopback port, and an admin key."""
    app = create_app(settings, start_workers=False)
    key = app.state.tagloop.keys.create("admin", "admin")
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}", key


@pytest.fixture(scope="module")
def server(tmp_path_factory, serve_in_thread) -> Iterator[tuple[str, dict]]:
    with running(serve_in_thread, Settings(data_dir=tmp_path_factory.mktemp("sigv4") / "data")) as served:
        yield served


def signed(
    url: str,
    key: dict,
    headers: dict[str, str],
    body: bytes = b"{}",
    service: str = "comprehend",
    region: str = REGION,
) -> list[tuple[str, str]]:
    """The headers botocore's signer sends for a POST of ``body`` carrying ``headers``
    (every one of them signed, as boto3 signs)."""
    request = AWSRequest(method="POST", url=f"{url}/", data=body, headers=headers)
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), service, region).add_auth(request)
    return [(name, str(value)) for name, value in request.headers.items()]


def operation(name: str) -> dict[str, str]:
    return {"Content-Type": JSON, "X-Amz-Target": TARGET + name}


def post(url: str, headers: list[tuple[str, str]], body: bytes = b"{}") -> httpx.Response:
    return httpx.post(f"{url}/", content=body, headers=headers)


def refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["__type"] == "InvalidSignatureException"
    assert message in response.json()["message"], response.json()["message"]


def test_requests_signed_as_boto3_signs_them_are_accepted(server):
    url, key = server
    response = post(url, signed(url, key, operation("ListEndpoints")))
    assert response.status_code == 200, response.text
    assert response.json()["EndpointPropertiesList"] == []
    body = b'{"EndpointArn": "%s"}' % NOWHERE.encode()
    sha = hashlib.sha256(body).hexdigest()  # a correct payload hash header is fine
    headers = signed(url, key, operation("DescribeEndpoint") | {"X-Amz-Content-SHA256": sha}, body)
    response = post(url, headers, body)
    assert response.json()["__type"] == "ResourceNotFoundException"  # signature accepted


def test_the_operation_and_content_type_must_be_signed(server):
    """Finding 5: a signature over host and x-amz-date only, replayed with any X-Amz-Target,
    ran that operation (a DeleteEndpoint here would have been accepted)."""
    url, key = server
    body = json.dumps({"EndpointArn": NOWHERE}).encode()
    bare = signed(url, key, {}, body)
    authorization = dict(bare)["Authorization"]
    assert "SignedHeaders=host;x-amz-date," in authorization
    response = post(url, [*bare, *operation("DeleteEndpoint").items()], body)
    refused(response, "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.")
    target_only = signed(url, key, {"X-Amz-Target": TARGET + "DeleteEndpoint"}, body)
    response = post(url, [*target_only, ("Content-Type", JSON)], body)
    refused(response, "'Content-Type' must be a 'SignedHeader' in the AWS Authorization.")


def test_a_captured_request_replayed_with_another_target_or_body_is_refused(server):
    url, key = server
    headers = signed(url, key, operation("ListEndpoints"))
    other = [
        (name, TARGET + "DeleteEndpoint" if name == "X-Amz-Target" else value) for name, value in headers
    ]
    refused(post(url, other), "The request signature we calculated does not match")
    refused(post(url, headers, b'{"MaxResults": 1}'), "The request signature we calculated does not match")
    # A second X-Amz-Target in front of the signed one: the operation is read from the first,
    # so SigV4 must sign both values joined, as AWS does (it was checked against the last).
    doubled = [("X-Amz-Target", TARGET + "DeleteEndpoint"), *headers]
    refused(post(url, doubled), "The request signature we calculated does not match")
    assert post(url, headers).status_code == 200  # the request itself was fine


def test_the_body_is_hashed_whatever_the_payload_header_says(server):
    """Finding 5: a body swapped under a signed x-amz-content-sha256 was accepted, and so
    was UNSIGNED-PAYLOAD: the signature never covered the body."""
    url, key = server
    body = b'{"MaxResults": 1}'
    claimed = hashlib.sha256(body).hexdigest()
    headers = signed(url, key, operation("ListEndpoints") | {"X-Amz-Content-SHA256": claimed}, body)
    assert post(url, headers, body).status_code == 200
    swapped = json.dumps({"EndpointArn": NOWHERE}).encode()
    refused(post(url, headers, swapped), "The provided 'x-amz-content-sha256' header does not match")
    for marker in (
        "UNSIGNED-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ):
        unsigned = signed(url, key, operation("ListEndpoints") | {"X-Amz-Content-SHA256": marker}, body)
        refused(post(url, unsigned, swapped), f"{marker} is not accepted")


def test_the_credential_scope_names_this_service_region_and_date(server):
    """Finding 5: a signature scoped to s3/eu-west-9 was accepted."""
    url, key = server
    response = post(url, signed(url, key, operation("ListEndpoints"), service="s3", region="eu-west-9"))
    refused(response, "Credential should be scoped to a valid region, not 'eu-west-9'.")
    response = post(url, signed(url, key, operation("ListEndpoints"), service="s3"))
    refused(response, "Credential should be scoped to correct service: 'comprehend'.")
    response = post(url, signed(url, key, operation("ListEndpoints"), service="sagemaker"))
    refused(response, "Credential should be scoped to correct service: 'comprehend'.")
    # Signed over a scope of yesterday, sent with an X-Amz-Date of now.
    now = datetime.now(UTC)
    request = AWSRequest(method="POST", url=f"{url}/", data=b"{}", headers=operation("ListEndpoints"))
    request.headers["X-Amz-Date"] = now.strftime("%Y%m%dT%H%M%SZ")
    request.context["timestamp"] = (now - timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    signer = SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "comprehend", REGION)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    names = signer.signed_headers(signer.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, SignedHeaders={names}, Signature={signature}"
    )
    refused(
        post(url, list(request.headers.items())),
        f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        f"'{now - timedelta(days=1):%Y%m%d}' != '{now:%Y%m%d}'",
    )


def test_any_region_is_accepted_when_the_setting_says_so(tmp_path, serve_in_thread):
    with running(serve_in_thread, Settings(data_dir=tmp_path / "data", aws_any_region=True)) as (url, key):
        response = post(url, signed(url, key, operation("ListEndpoints"), region="eu-west-9"))
        assert response.status_code == 200, response.text
        response = post(url, signed(url, key, operation("ListEndpoints"), service="s3", region="eu-west-9"))
        refused(response, "Credential should be scoped to correct service: 'comprehend'.")


def test_the_access_key_id_is_read_from_the_header_alone():
    """What the server checks before it reads a body: the header's presence and shape."""
    header = (
        "AWS4-HMAC-SHA256 Credential=TLABC/20260101/us-east-1/comprehend/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={'a' * 64}"
    )
    assert access_key_id(header) == "TLABC"
    with pytest.raises(MissingAuthentication):
        access_key_id("")
    for malformed in (
        "Bearer secret",
        header.replace("a" * 64, "a" * 63),
        "AWS4-HMAC-SHA256 Credential=TLABC",
    ):
        with pytest.raises(InvalidSignature):
            access_key_id(malformed)
