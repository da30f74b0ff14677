"""No input gives a 5xx: every Comprehend operation (JSON 1.1 and CBOR) and every /v1 route,
driven with the inputs reported in issue 11 and with inputs hypothesis generates from the
API's own shapes (botocore's model of Comprehend, the pydantic models of /v1): wrong types,
boundary lengths and values, huge numbers, NaN, nested junk, missing required members.

One app serves the whole module (in process, real keys: SigV4 for Comprehend, Bearer for /v1);
its job workers are off, so what an operation queues stays queued.
"""

from __future__ import annotations

import base64
import csv
import gzip
import json
import math
import typing
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import botocore.session
import cbor2
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagloop.api import review_routes, v1
from tagloop.api.comprehend.input import SAME_INPUT, java_pattern
from tagloop.api.comprehend.operations import OPERATIONS
from tagloop.api.schemas import ClassifyRequest, InvokeRequest
from tagloop.api.server import create_app
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

REGION, ACCOUNT = "us-east-1", "123456789012"
PREFIX = f"arn:aws:comprehend:{REGION}:{ACCOUNT}"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/comprehend"
EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is never a flake
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
MODEL = botocore.session.get_session().get_service_model("comprehend")


@pytest.fixture(scope="module")
def app(tmp_path_factory, tickets):
    """A tagloop app with the classifier `desk` trained and served, files to train from, an
    admin key, and a client."""
    root = tmp_path_factory.mktemp("malformed")
    data = root / "tickets.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    small = root / "small.csv"  # enough to train on, quick to import for each example
    by_label: dict[str, list[tuple[str, str]]] = {}
    for label, text in tickets:
        by_label.setdefault(label, []).append((label, text))
    with small.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(
            row for rows in by_label.values() for row in rows[:10]
        )
    (root / "folder").mkdir()
    application = create_app(Settings(data_dir=root / "data"), start_workers=False)
    tagloop = application.state.tagloop
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", "v1")["job_id"])
    key = tagloop.keys.create("admin", "admin")
    with TestClient(application) as client:
        yield {"client": client, "key": key, "root": root, "small": small, "data": data}


def comprehend_call(app: dict, operation: str, raw: bytes, protocol: str) -> Any:
    """POST ``raw`` to ``operation`` in ``protocol``, signed by the admin key as boto3 signs."""
    if protocol == "cbor":
        url = f"http://testserver/service/Comprehend_20171127/operation/{operation}"
        headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    else:
        url = "http://testserver/"
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"Comprehend_20171127.{operation}",
        }
    request = AWSRequest(method="POST", url=url, data=raw, headers=headers)
    key = app["key"]
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "comprehend", REGION).add_auth(request)
    return app["client"].post(url, content=raw, headers=dict(request.headers.items()))


def _for_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {key: _for_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_for_json(item) for item in value]
    return value


def encode(body: Any, protocol: str) -> bytes:
    if protocol == "cbor":
        return cbor2.dumps(body)
    return json.dumps(_for_json(body), allow_nan=True).encode()  # NaN and Infinity as sent by hand


def answered(response: Any, protocol: str) -> dict[str, Any]:
    """The decoded answer, after checking it is no 5xx and is in the protocol's shape."""
    assert response.status_code < 500, response.content[:500]
    if protocol == "cbor":
        assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
        payload = cbor2.loads(response.content)
    else:
        payload = json.loads(response.content)
    if response.status_code >= 400:
        assert isinstance(payload["__type"], str) and isinstance(payload["message"], str), payload
    return payload


# --- the inputs of issue 11 ------------------------------------------------------------------

ENDPOINT_ARN = f"{PREFIX}:document-classifier-endpoint/desk"
CLASSIFIER_ARN = f"{PREFIX}:document-classifier/desk"


def training(**changes: Any) -> dict[str, Any]:
    body = {
        "DocumentClassifierName": "reported",
        "DataAccessRoleArn": ROLE,
        "InputDataConfig": {"S3Uri": "/nowhere/train.csv"},
        "LanguageCode": "en",
    }
    return body | changes


def batch(**changes: Any) -> dict[str, Any]:
    body = {
        "DocumentClassifierArn": CLASSIFIER_ARN,
        "DataAccessRoleArn": ROLE,
        "InputDataConfig": {"S3Uri": "/nowhere/in.txt"},
        "OutputDataConfig": {"S3Uri": "/nowhere/out"},
    }
    return body | changes


VALIDATION = "ValidationException"
REPORTED: list[tuple[str, Any, str]] = [
    ("ListEndpoints", {"Filter": "IN_SERVICE"}, "ValidationException"),
    ("ListEndpoints", {"Filter": ["IN_SERVICE"]}, "ValidationException"),
    ("ListDocumentClassifiers", {"Filter": "TRAINED"}, "ValidationException"),
    ("ListDocumentClassificationJobs", {"Filter": [1]}, "ValidationException"),
    ("ListEndpoints", {"NextToken": "!!!"}, "InvalidRequestException"),
    ("ListEndpoints", {"NextToken": "YWJj"}, "InvalidRequestException"),
    ("ListDocumentClassifiers", {"NextToken": "LTE="}, "InvalidRequestException"),  # "-1"
    ("ListEndpoints", {"NextToken": 5}, "ValidationException"),
    ("ListEndpoints", {"MaxResults": "abc"}, "ValidationException"),
    ("ListEndpoints", {"MaxResults": math.nan}, "SerializationException/ValidationException"),
    (
        "CreateEndpoint",
        {"EndpointName": "e", "ModelArn": CLASSIFIER_ARN, "DesiredInferenceUnits": "abc"},
        VALIDATION,
    ),
    (
        "CreateEndpoint",
        {"EndpointName": "e", "ModelArn": CLASSIFIER_ARN, "DesiredInferenceUnits": 10**20},
        VALIDATION,
    ),
    ("UpdateEndpoint", {"EndpointArn": ENDPOINT_ARN, "DesiredInferenceUnits": 10**20}, VALIDATION),
    ("CreateDocumentClassifier", training(InputDataConfig="s3://bucket/x.csv"), "ValidationException"),
    ("CreateDocumentClassifier", training(VersionName=2), "ValidationException"),
    ("CreateDocumentClassifier", training(VersionName=["v2"]), "ValidationException"),
    ("CreateDocumentClassifier", training(Mode=1), "ValidationException"),
    ("CreateDocumentClassifier", training(Mode=["MULTI_LABEL"]), "ValidationException"),
    ("CreateDocumentClassifier", training(InputDataConfig={"S3Uri": "/x", "LabelDelimiter": 1}), VALIDATION),
    (
        "CreateDocumentClassifier",
        training(InputDataConfig={"S3Uri": "/x", "LabelDelimiter": ["|"]}),
        VALIDATION,
    ),
    ("CreateDocumentClassifier", training(InputDataConfig={"S3Uri": 5}), "ValidationException"),
    ("CreateDocumentClassifier", training(InputDataConfig={"S3Uri": ["/x"]}), "ValidationException"),
    ("StartDocumentClassificationJob", batch(OutputDataConfig={"S3Uri": 5}), "ValidationException"),
    ("StartDocumentClassificationJob", batch(InputDataConfig={"S3Uri": 5}), "ValidationException"),
    ("ClassifyDocument", {"EndpointArn": ENDPOINT_ARN, "Text": ["x"]}, "ValidationException"),
]


@pytest.mark.parametrize("protocol", ["json", "cbor"])
@pytest.mark.parametrize(("operation", "body", "expected"), REPORTED)
def test_the_reported_inputs_are_client_errors(app, protocol, operation, body, expected):
    """Each answered 500 InternalFailure before (issue 11, finding 7). NaN is no JSON: that
    body is refused whole; CBOR carries it, and the member is refused."""
    response = comprehend_call(app, operation, encode(body, protocol), protocol)
    assert response.status_code == 400, response.content
    json_kind, _, cbor_kind = expected.partition("/")
    assert answered(response, protocol)["__type"] == (
        cbor_kind or json_kind if protocol == "cbor" else json_kind
    )


@pytest.mark.parametrize("protocol", ["json", "cbor"])
@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{\x00}\x00",
        b"[" * 100_000,
        b'{"MaxResults": NaN}',
        b'{"Text": "\\ud800"}',
        b"[]",
        b"\x80",
        b"5",
    ],
    ids=["not-utf8", "deep", "nan", "lone-surrogate", "array", "bad-byte", "number"],
)
def test_unreadable_bodies_are_serialization_errors(app, protocol, raw):
    if protocol == "cbor" and raw.startswith(b"["):
        raw = b"\x81" * 100_000  # CBOR's deep nesting
    response = comprehend_call(app, "ListEndpoints", raw, protocol)
    assert response.status_code == 400
    assert answered(response, protocol)["__type"] == "SerializationException"


@pytest.mark.parametrize("protocol", ["json", "cbor"])
def test_our_own_next_tokens_still_page(app, protocol):
    app["client"].app.state.tagloop.endpoints.create(f"paged-{protocol}", "desk", "v1")
    pages, token = [], None
    while True:
        body = {"MaxResults": 1} | ({"NextToken": token} if token else {})
        page = answered(comprehend_call(app, "ListEndpoints", encode(body, protocol), protocol), protocol)
        pages.append([endpoint["EndpointArn"] for endpoint in page["EndpointPropertiesList"]])
        token = page.get("NextToken")
        if token is None:
            break
    assert all(len(page) == 1 for page in pages) and len(pages) >= 2
    assert f"{PREFIX}:document-classifier-endpoint/paged-{protocol}" in [
        arn for page in pages for arn in page
    ]


@pytest.mark.parametrize("protocol", ["json", "cbor"])
def test_a_truncated_gz_is_a_client_error(app, protocol):
    truncated = app["root"] / f"truncated-{protocol}.csv.gz"
    truncated.write_bytes(gzip.compress(app["small"].read_bytes())[:200])
    body = training(DocumentClassifierName=f"gz-{protocol}", InputDataConfig={"S3Uri": str(truncated)})
    response = comprehend_call(app, "CreateDocumentClassifier", encode(body, protocol), protocol)
    assert response.status_code == 400
    assert truncated.name in answered(response, protocol)["message"]


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "/v1/endpoints", {"name": "big", "classifier": "desk", "desired_inference_units": 10**20}),
        ("post", "/v1/endpoints", {"name": "big", "classifier": "desk", "desired_inference_units": 1e20}),
        ("post", "/v1/endpoints", {"name": "big", "classifier": "desk", "desired_inference_units": 1001}),
        ("post", "/v1/endpoints", {"name": "a\x00", "classifier": "desk"}),
        ("patch", "/v1/endpoints/desk", {"desired_inference_units": 10**20}),
        ("get", f"/v1/jobs?limit={10**20}", None),
        ("get", "/v1/jobs?limit=0", None),
        ("get", "/v1/jobs?status=" + "X" * 100, None),
        ("get", "/v1/endpoints/a%00b", None),
        ("get", "/v1/jobs/a%00b", None),
        ("post", "/v1/keys", {"name": "x" * 2_000_000, "scope": "classify"}),
        ("post", "/v1/keys", {"name": "nul\x00", "scope": "classify"}),
    ],
)
def test_v1_bounds_are_422(app, method, path, payload):
    """Before: a 500 (SQLite cannot store an int over 2**63) or a stored 2 MB key name."""
    response = app["client"].request(
        method, path, json=payload, headers={"Authorization": f"Bearer {app['key']['secret']}"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "InvalidRequestException"


def test_unexpected_failures_answer_in_the_protocol(tmp_path):
    """A fault no input should cause (here: a table gone from the database) is a 5xx in
    Comprehend's shape, in CBOR on the CBOR route, with nothing of the fault in it (SQLite
    reports a missing table as an OperationalError, which the door answers as a database
    that cannot serve: 503)."""
    application = create_app(Settings(data_dir=tmp_path / "data"), start_workers=False)
    tagloop = application.state.tagloop
    key = tagloop.keys.create("admin", "admin")
    with TestClient(application) as client:
        with tagloop.database.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE endpoints")
        state = {"client": client, "key": key}
        for protocol in ("json", "cbor"):
            response = comprehend_call(state, "ListEndpoints", encode({}, protocol), protocol)
            assert response.status_code == 503
            if protocol == "cbor":
                assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
                assert response.headers["content-type"] == "application/cbor"
                payload = cbor2.loads(response.content)
            else:
                payload = response.json()
            assert payload == {
                "__type": "ServiceUnavailableException",
                "message": "the database is unavailable; try again later",
            }


def test_nul_characters_never_reach_postgresql(postgres_db, tmp_path):
    """PostgreSQL refuses NUL in text, where SQLite (the rest of this module) stores it: names,
    ids and statuses with one are refused before a query is made."""
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_db)
    application = create_app(settings, start_workers=False)
    key = application.state.tagloop.keys.create("admin", "admin")
    with TestClient(application) as client:
        headers = {"Authorization": f"Bearer {key['secret']}"}
        for method, path, payload in [
            ("post", "/v1/endpoints/a%00b/classify", {"text": "x"}),
            ("get", "/v1/endpoints/a%00b", None),
            ("get", "/v1/jobs?status=a%00b", None),
            ("get", "/v1/jobs/a%00b", None),
            ("post", "/v1/jobs/a%00b/stop", None),
            ("get", "/v1/classifiers/a%00b/versions", None),
            ("get", "/v1/classifiers/desk/versions/a%00b", None),
            ("delete", "/v1/keys/a%00b", None),
            ("post", "/v1/keys", {"name": "a\x00b"}),
            ("post", "/v1/endpoints", {"name": "a", "classifier": "a\x00b"}),
            ("get", "/v1/predictions?endpoint=a%00b", None),
            ("get", "/v1/predictions?label=a%00b", None),
            ("get", "/v1/predictions?since=a%00b", None),
            ("get", "/v1/review/tasks/a%00b", None),
            ("post", "/v1/review/tasks/a%00b/answer", {"labels": ["a\x00b"]}),
            ("post", "/v1/review/next", {"classifier": "a\x00b"}),
            ("get", "/v1/review/tasks?reason=a%00b", None),
            (
                "get",
                "/v1/review/tasks?after="
                + base64.urlsafe_b64encode(b'["2026-12-01T00:00:00+00:00", "a\\u0000b"]').decode(),
                None,
            ),
            ("get", "/v1/review/agreement?classifier=a%00b", None),
            ("get", "/v1/classifiers/a%00b/verified", None),
        ]:
            response = client.request(method, path, json=payload, headers=headers)
            assert 400 <= response.status_code < 500, (method, path, response.text)
        state = {"client": client, "key": key}
        for operation, body in [
            ("ClassifyDocument", {"EndpointArn": ENDPOINT_ARN + "\x00", "Text": "x"}),
            ("DescribeEndpoint", {"EndpointArn": ENDPOINT_ARN + "\x00"}),
            ("DescribeDocumentClassifier", {"DocumentClassifierArn": CLASSIFIER_ARN + "\x00"}),
            ("DescribeDocumentClassificationJob", {"JobId": "a\x00"}),
            ("StopDocumentClassificationJob", {"JobId": "a\x00"}),
            ("ListDocumentClassificationJobs", {"Filter": {"JobName": "a\x00"}}),
            ("ListDocumentClassifiers", {"Filter": {"DocumentClassifierName": "a\x00"}}),
            (
                "CreateEndpoint",
                {"EndpointName": "a", "ModelArn": CLASSIFIER_ARN + "\x00", "DesiredInferenceUnits": 1},
            ),
            ("CreateDocumentClassifier", training(VersionName="v\x00")),
        ]:
            for protocol in ("json", "cbor"):
                response = comprehend_call(state, operation, encode(body, protocol), protocol)
                assert answered(response, protocol)["__type"] == "ValidationException", (operation, protocol)


# --- generated inputs ------------------------------------------------------------------------

HUGE = [10**20, -(10**20), 2**31, 2**63, 2**64, -1, 0, 1]
ODD_TEXT = ["", " ", "\x00", "x" * 5_000, "é" * 300, "../../etc/passwd", "!!!", "YWJj", "null", "s3://"]
SCALAR_JUNK = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(HUGE)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(ODD_TEXT)
    | st.binary(max_size=8)
    | st.datetimes(timezones=st.just(UTC))
)
JUNK = st.recursive(
    SCALAR_JUNK,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
ABSENT = object()  # a member left out (a required one, sometimes)
NAMES = ["desk", "nope", "v1", "second"]  # the app's own names reach deeper than random ones


def _arns(kind: str) -> list[str]:
    return [f"{PREFIX}:{kind}/{name}" for name in NAMES] + [f"{PREFIX}:{kind}/desk/version/v1"]


def _pools(app: dict, destructive: bool) -> dict[str, list[Any]]:
    """Values for members by name (or ``Parent.Member``): what the app has, so that a valid
    request reaches the operation and does something."""
    files = [
        str(app["small"]),
        f"file://{app['small']}",
        str(app["root"] / "missing.csv"),
        str(app["root"] / "folder"),
    ]
    classifiers = _arns("document-classifier")
    pools = {
        "EndpointArn": _arns("document-classifier-endpoint"),
        "ModelArn": classifiers,
        "DesiredModelArn": classifiers,
        "DocumentClassifierArn": classifiers,
        "DocumentClassifierName": NAMES,
        "EndpointName": NAMES,
        "VersionName": NAMES,
        "S3Uri": files,
        "TestS3Uri": files,
        "OutputDataConfig.S3Uri": [str(app["root"] / "out"), str(app["root"] / "folder")],
        "DataAccessRoleArn": [ROLE],
        "Text": ["my vpn keeps dropping", "x", "é" * 3000],
        "NextToken": ["MQ==", "MTAwMA==", "!!!"],
    }
    if destructive:  # leave the served classifier and endpoint alone
        pools = {key: [value for value in pool if "/desk" not in str(value)] for key, pool in pools.items()}
    return pools


def _wrong(shape: Any) -> st.SearchStrategy[Any]:
    """A value that breaks ``shape``: a boundary, a wrong type, junk, or nothing at all."""
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if shape.type_name == "string":
        boundary = ["", "x" * (high + 1 if high else 5_000), *([value.lower() + "x" for value in shape.enum])]
    elif shape.type_name in ("integer", "long"):
        boundary = [(low or 0) - 1, (high or 2**31 - 1) + 1, *HUGE]
    elif shape.type_name == "list":
        boundary = [[], [None], [[]] * ((high or 10) + 1)]
    else:
        boundary = [{}, [], ""]
    return st.sampled_from(boundary) | JUNK | st.just(ABSENT)


def _shape_values(
    shape: Any, path: str, pools: dict[str, list[Any]], wild: str | None
) -> st.SearchStrategy[Any]:
    """Values of ``shape`` at ``path``: conforming, except at the path ``wild`` ("*": anywhere)."""
    conforming = _conforming(shape, path, pools, wild)
    if path and (wild == "*" or path == wild):
        return conforming | _wrong(shape)
    return conforming


def _conforming(
    shape: Any, path: str, pools: dict[str, list[Any]], wild: str | None
) -> st.SearchStrategy[Any]:
    name = path.rsplit(".", 1)[-1].removesuffix("[]")
    pool = pools.get(".".join(path.split(".")[-2:])) or pools.get(name)
    if pool:
        return st.sampled_from(pool)
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    kind = shape.type_name
    if kind == "structure":
        members = {
            key: _shape_values(member, f"{path}.{key}", pools, wild) for key, member in shape.members.items()
        }
        required = {key: members[key] for key in shape.required_members}
        optional = {key: value for key, value in members.items() if key not in required}
        return st.fixed_dictionaries(required, optional=optional).map(
            lambda values: {key: value for key, value in values.items() if value is not ABSENT}
        )
    if kind == "list":
        items = _shape_values(shape.member, f"{path}[]", pools, wild).filter(lambda item: item is not ABSENT)
        return st.lists(items, min_size=low or 0, max_size=min(high or 3, 3))
    if kind == "map":
        keys = _conforming(shape.key, f"{path}{{}}", pools, wild)
        return st.dictionaries(keys, _shape_values(shape.value, f"{path}{{}}", pools, wild), max_size=2)
    if kind == "string":
        if shape.enum:
            return st.sampled_from(shape.enum)
        pattern = java_pattern(shape.metadata["pattern"]) if "pattern" in shape.metadata else None
        if pattern is None:
            return st.text(min_size=low or 0, max_size=min(high or 40, 40))
        return st.from_regex(pattern, fullmatch=True).filter(
            lambda text: (low or 0) <= len(text) <= (high or 10**6)
        )
    if kind in ("integer", "long"):
        return st.integers(min_value=low or 0, max_value=min(high or 1_000, 1_000))
    if kind == "timestamp":
        return st.datetimes(timezones=st.just(UTC))
    if kind == "blob":
        return st.binary(min_size=low or 0, max_size=16)
    if kind == "boolean":
        return st.booleans()
    return st.floats(allow_nan=False, allow_infinity=False)


def _paths(shape: Any, path: str = "") -> list[str]:
    """Every member path of ``shape`` (list items as ``path[]``)."""
    if shape.type_name == "structure":
        return [
            found
            for key, member in shape.members.items()
            for found in [f"{path}.{key}", *_paths(member, f"{path}.{key}")]
        ]
    if shape.type_name == "list":
        return [f"{path}[]", *_paths(shape.member, f"{path}[]")]
    return []


def body_strategy(app: dict, operation: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid body, a valid body with one member wrong (or missing), or a body with any of
    its members wrong; sometimes with members the model does not know. Built once per operation."""
    made = app.setdefault("strategies", {})
    if operation not in made:
        made[operation] = _body_strategy(app, operation)
    return made[operation]


def _body_strategy(app: dict, operation: str) -> st.SearchStrategy[dict[str, Any]]:
    shape = MODEL.operation_model(SAME_INPUT.get(operation, operation)).input_shape
    pools = _pools(app, destructive=operation.startswith(("Delete", "Stop")))
    one_wrong = [_shape_values(shape, "", pools, path) for path in _paths(shape)]
    body = _shape_values(shape, "", pools, None) | st.one_of(one_wrong) | _shape_values(shape, "", pools, "*")
    unknown = st.dictionaries(st.text(max_size=8), JUNK, max_size=2)
    return st.builds(lambda known, extra: extra | known, body, st.just({}) | unknown)


@pytest.mark.parametrize("protocol", ["json", "cbor"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@EXAMPLES
@given(data=st.data())
def test_no_generated_input_gives_a_5xx(app, protocol, operation, data):
    body = data.draw(body_strategy(app, operation), label="body")
    answered(comprehend_call(app, operation, encode(body, protocol), protocol), protocol)


@pytest.mark.parametrize("protocol", ["json", "cbor"])
@settings(EXAMPLES, max_examples=60)
@given(
    operation=st.sampled_from(sorted(OPERATIONS)),
    raw=st.binary(max_size=64) | JUNK.map(lambda value: cbor2.dumps(value)) | JUNK.map(repr).map(str.encode),
)
def test_no_body_gives_a_5xx(app, protocol, operation, raw):
    answered(comprehend_call(app, operation, raw, protocol), protocol)


# --- /v1 -------------------------------------------------------------------------------------

V1_ROUTES = sorted(
    (
        (route, method)
        for route in [*v1.router.routes, *review_routes.router.routes]
        if isinstance(route, APIRoute)
        for method in route.methods
    ),
    key=lambda pair: (pair[0].path, pair[1]),
)


def _v1_body(route: APIRoute) -> st.SearchStrategy[Any]:
    model = route.body_field.field_info.annotation if route.body_field else None
    if model is not None and not hasattr(model, "model_fields"):  # an optional body: Model | None
        model = next(arg for arg in typing.get_args(model) if arg is not type(None))
    if model is None and route.name in ("classify", "invoke"):
        # read by hand (direct routes); the schema is what they document
        model = ClassifyRequest if route.name == "classify" else InvokeRequest
    if model is None:
        return st.none()
    fields = {
        name: st.sampled_from(["desk", "v1", "classify", "admin", "my vpn keeps dropping", 1, 2, 1000])
        | st.lists(st.sampled_from(["vpn", ""]), max_size=3)
        | JUNK
        for name in model.model_fields
    }
    return st.fixed_dictionaries({}, optional=fields) | JUNK


def _path_value(name: str, method: str) -> st.SearchStrategy[str]:
    own = [] if method == "DELETE" else ["desk", "v1"]  # leave the served endpoint alone
    return (
        st.sampled_from([*own, "nope", "a" * 64, "x" * 300])
        | st.text(max_size=12)
        | st.sampled_from(ODD_TEXT)
    )


@pytest.mark.parametrize(("route", "method"), V1_ROUTES, ids=[f"{m} {r.path}" for r, m in V1_ROUTES])
@EXAMPLES
@given(data=st.data())
def test_no_v1_input_gives_a_5xx(app, route, method, data):
    path = route.path
    for name in route.param_convertors:
        value = data.draw(_path_value(name, method), label=name)
        path = path.replace(f"{{{name}}}", quote(value, safe="") or "%20")
    query = {
        param.name: data.draw(
            st.sampled_from([str(n) for n in HUGE] + ODD_TEXT) | st.text(max_size=8), label=param.name
        )
        for param in route.dependant.query_params
    }
    body = data.draw(_v1_body(route), label="body")
    raw = json.dumps(_for_json(body), allow_nan=True).encode() if body is not None else b""
    response = app["client"].request(
        method,
        path,
        params=query,
        content=raw,
        headers={"Authorization": f"Bearer {app['key']['secret']}", "Content-Type": "application/json"},
    )
    assert response.status_code < 500, (method, path, query, body, response.text[:500])
