"""The shape of an error at each door, pinned in one place.

- native API: ``{"error": {"type", "message"}}`` with its status, for tagloop's errors, failed
  authentication, unknown routes, wrong methods, invalid bodies, oversized bodies and an
  unreachable database;
- Comprehend API: ``{"__type", "message"}`` with AWS's status, in JSON 1.1 on ``POST /`` and in
  CBOR on the RPC v2 paths, for the same kinds of failure;
- the invoke route (``/v1/endpoints/{name}/invoke``, what API Gateway + Lambda clients call):
  ``{"statusCode", "body": {"type", "message"}}`` with the native status, as HTTP status too;
- CLI: one line on stderr, ``error: <message>``, and exit status 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cbor2
import psycopg
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from tagloop.api.server import create_app
from tagloop.settings import Settings
from tagloop.storage import migrate
from tagloop.storage.database import Database

from .conftest import auth, error_of

REGION = "us-east-1"
TARGET = "Comprehend_20171127."
CBOR = "/service/Comprehend_20171127/operation/"
AMZ_JSON = "application/x-amz-json-1.1"
NOWHERE = "arn:aws:comprehend:us-east-1:123456789012:document-classifier-endpoint/nowhere"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app (auth on, a small body limit) and an admin and a classify key."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("shapes") / "data", max_body_bytes=10_000)
    app = create_app(settings, start_workers=False)
    tagloop = app.state.tagloop
    keys = {scope: tagloop.keys.create(scope, scope) for scope in ("classify", "admin")}
    with TestClient(app) as client:
        yield client, keys


def native(response, status: int, kind: str) -> str:
    """The message of a native error answer, after checking its status, type and shape."""
    message = error_of(response, status)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == kind
    assert message
    return message


def signed(key: dict, path: str, content: bytes, headers: dict[str, str], secret: str | None = None):
    """Headers of a request signed with AWS Signature V4 as botocore signs one."""
    request = AWSRequest(method="POST", url=f"http://testserver{path}", data=content, headers=headers)
    SigV4Auth(Credentials(key["access_key_id"], secret or key["secret"]), "comprehend", REGION).add_auth(
        request
    )
    return dict(request.headers.items())


def call_json(client, key: dict | None, operation: str, body: dict, secret: str | None = None, **extra):
    content = json.dumps(body).encode()
    headers = {"Content-Type": AMZ_JSON, "X-Amz-Target": TARGET + operation, **extra}
    if key is not None:
        headers = signed(key, "/", content, headers, secret)
    return client.post("/", content=content, headers=headers)


def call_cbor(client, key: dict | None, operation: str, body: dict, secret: str | None = None):
    content = cbor2.dumps(body)
    headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    if key is not None:
        headers = signed(key, CBOR + operation, content, headers, secret)
    return client.post(CBOR + operation, content=content, headers=headers)


def aws_json(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == AMZ_JSON
    body = response.json()
    assert set(body) == {"__type", "message"} and body["__type"] == kind, body
    return body["message"]


def aws_cbor(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.content
    assert response.headers["content-type"] == "application/cbor"
    assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
    body = cbor2.loads(response.content)
    assert set(body) == {"__type", "message"} and body["__type"] == kind, body
    return body["message"]


# --- the native API ----------------------------------------------------------------------


def test_native_tagloop_error(served):
    client, keys = served
    answer = client.post(
        "/v1/endpoints/nowhere/classify", json={"text": "hi"}, headers=auth(keys["classify"])
    )
    assert "nowhere" in native(answer, 404, "ResourceNotFoundException")
    assert "nowhere" in native(
        client.get("/v1/endpoints/nowhere", headers=auth(keys["admin"])), 404, "ResourceNotFoundException"
    )


def test_native_authentication_and_scope(served):
    client, keys = served
    url, body = "/v1/endpoints/nowhere/classify", {"text": "hi"}
    assert "Bearer" in native(client.post(url, json=body), 401, "UnrecognizedClientException")
    invalid = client.post(url, json=body, headers={"Authorization": "Bearer not-a-key"})
    assert native(invalid, 401, "UnrecognizedClientException") == "invalid or revoked API key"
    scope = client.get("/v1/endpoints", headers=auth(keys["classify"]))
    assert "'admin'" in native(scope, 403, "AccessDeniedException")


def test_native_unknown_route_and_wrong_method(served):
    client, keys = served
    assert (
        native(client.get("/v2/nothing"), 404, "UnknownOperationException") == "no route for GET /v2/nothing"
    )
    assert native(client.delete("/"), 405, "MethodNotAllowedException")  # POST / is Comprehend's
    wrong = client.get("/v1/endpoints/desk/classify", headers=auth(keys["admin"]))  # a direct route
    assert "it takes POST" in native(wrong, 405, "MethodNotAllowedException")
    assert wrong.headers["allow"] == "POST"
    assert native(client.put("/v1/endpoints"), 405, "MethodNotAllowedException")


def test_native_invalid_body(served):
    client, keys = served
    answer = client.post("/v1/endpoints", json={"name": "x"}, headers=auth(keys["admin"]))  # no classifier
    assert "classifier" in native(answer, 422, "InvalidRequestException")
    hand_parsed = client.post("/v1/endpoints/x/classify", content=b"{", headers=auth(keys["classify"]))
    assert "not valid JSON" in native(hand_parsed, 422, "InvalidRequestException")


def test_native_oversized_body(served):
    client, keys = served
    answer = client.post(
        "/v1/endpoints/x/classify", json={"text": "a" * 20_000}, headers=auth(keys["classify"])
    )
    assert "TAGLOOP_MAX_BODY_BYTES" in native(answer, 413, "LimitExceeded")
    assert "TAGLOOP_MAX_BODY_BYTES" in native(
        client.post("/v1/keys", content=b"a" * 20_000), 413, "LimitExceeded"
    )


# --- the invoke route (an API Gateway + Lambda's envelope) ----------------------------------


def envelope(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"statusCode", "body"} and body["statusCode"] == status, body
    assert set(body["body"]) == {"type", "message"} and body["body"]["type"] == kind, body
    return body["body"]["message"]


def test_invoke_errors_in_its_envelope(served):
    client, keys = served
    url = "/v1/endpoints/nowhere/invoke"
    answer = client.post(url, json={"Text": "hi"}, headers=auth(keys["classify"]))
    assert "nowhere" in envelope(answer, 404, "ResourceNotFoundException")
    assert "Signature V4" in envelope(
        client.post(url, json={"Text": "hi"}), 401, "UnrecognizedClientException"
    )
    scope = client.post(url, json={"Text": "hi"}, headers={"Authorization": "Bearer not-a-key"})
    envelope(scope, 401, "UnrecognizedClientException")
    assert "not valid JSON" in envelope(
        client.post(url, content=b"{", headers=auth(keys["classify"])), 422, "InvalidRequestException"
    )
    big = client.post(url, json={"Text": "a" * 20_000}, headers=auth(keys["classify"]))
    assert "TAGLOOP_MAX_BODY_BYTES" in envelope(big, 413, "LimitExceeded")
    wrong = client.get(url, headers=auth(keys["classify"]))
    assert "it takes POST" in envelope(wrong, 405, "MethodNotAllowedException")


# --- the Comprehend API ------------------------------------------------------------------


def test_comprehend_operation_error(served):
    client, keys = served
    body = {"EndpointArn": NOWHERE}
    assert "nowhere" in aws_json(
        call_json(client, keys["admin"], "DescribeEndpoint", body), 400, "ResourceNotFoundException"
    )
    assert "nowhere" in aws_cbor(
        call_cbor(client, keys["admin"], "DescribeEndpoint", body), 400, "ResourceNotFoundException"
    )
    scope = call_json(client, keys["classify"], "ListEndpoints", {})
    assert "ListEndpoints needs 'admin'" in aws_json(scope, 400, "AccessDeniedException")


def test_comprehend_unknown_operation(served):
    client, keys = served
    aws_json(call_json(client, keys["admin"], "DetectDragons", {}), 400, "UnknownOperationException")
    aws_cbor(call_cbor(client, keys["admin"], "DetectDragons", {}), 400, "UnknownOperationException")
    no_target = client.post("/", content=b"{}", headers={"Content-Type": AMZ_JSON})
    aws_json(no_target, 400, "UnknownOperationException")
    aws_cbor(client.get(CBOR + "ListEndpoints"), 400, "UnknownOperationException")  # wrong method, its door
    aws_cbor(client.post("/service/Comprehend_20171127/elsewhere"), 400, "UnknownOperationException")


def test_comprehend_oversized_body(served):
    client, keys = served
    body = {"Text": "a" * 20_000, "EndpointArn": NOWHERE}
    message = aws_json(
        call_json(client, keys["classify"], "ClassifyDocument", body), 400, "TextSizeLimitExceededException"
    )
    assert "TAGLOOP_MAX_BODY_BYTES" in message
    message = aws_cbor(
        call_cbor(client, keys["classify"], "ClassifyDocument", body), 400, "TextSizeLimitExceededException"
    )
    assert "TAGLOOP_MAX_BODY_BYTES" in message


def test_comprehend_bad_signature(served):
    client, keys = served
    wrong = "wrong" * 8
    aws_json(
        call_json(client, keys["admin"], "ListEndpoints", {}, secret=wrong), 403, "InvalidSignatureException"
    )
    aws_cbor(
        call_cbor(client, keys["admin"], "ListEndpoints", {}, secret=wrong), 403, "InvalidSignatureException"
    )
    aws_json(call_json(client, None, "ListEndpoints", {}), 403, "MissingAuthenticationTokenException")
    aws_cbor(call_cbor(client, None, "ListEndpoints", {}), 403, "MissingAuthenticationTokenException")
    unknown = {"access_key_id": "TLUNKNOWNKEY00000000", "secret": "x"}
    aws_json(call_json(client, unknown, "ListEndpoints", {}), 400, "UnrecognizedClientException")


# --- an unreachable database, at both HTTP doors ------------------------------------------


def test_an_unreachable_database_is_a_503_in_each_doors_shape(fresh_postgres, tmp_path):
    migrate.upgrade(Database(fresh_postgres))
    settings = Settings(data_dir=tmp_path / "data", database_url=fresh_postgres, auth=False)
    app = create_app(settings, start_workers=False)
    try:
        # no lifespan: no background thread queries the database; a loopback client (no-auth mode)
        client = TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000))
        assert client.get("/v1/endpoints").json() == []
        url = make_url(fresh_postgres)
        admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{url.database}" WITH (FORCE)')
        answers = [
            (client.get("/v1/endpoints"), native),
            (call_json(client, None, "ListEndpoints", {}), aws_json),
            (call_cbor(client, None, "ListEndpoints", {}), aws_cbor),
        ]
        for response, shape in answers:
            message = shape(response, 503, "ServiceUnavailableException")
            assert message == "the database is unavailable; try again later"
            assert url.database not in str(response.content) and "Traceback" not in str(response.content)
    finally:
        app.state.tagloop.close()


# --- the CLI -----------------------------------------------------------------------------

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]


def test_the_cli_prints_one_line_and_exits_with_1(tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    commands = [
        (["--data-dir", str(tmp_path / "a"), "classify", "nobody", "hello"], "no classifier named 'nobody'"),
        (["--database-url", unreachable, "classifiers"], "cannot use the database"),
    ]
    started = [
        subprocess.Popen(
            [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
        )
        for args, _ in commands
    ]
    for process, (_, needle) in zip(started, commands, strict=True):
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 1, stderr
        assert stdout == ""
        assert stderr.startswith("error: ") and needle in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
