"""No input gives a 5xx on the A2I doors: every SageMaker operation and every A2I runtime
route, driven with bodies, names and queries hypothesis makes from the members of botocore's
model (right names, junk and plausible values), signed by an admin key as boto3 signs."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagloop.api.a2i.sagemaker import OPERATIONS
from tagloop.api.server import create_app
from tagloop.services.human_loops import FlowRequest
from tagloop.settings import Settings

REGION, ACCOUNT = "us-east-1", "123456789012"
PREFIX = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
PLAUSIBLE = st.sampled_from(
    [
        "flow",
        "ui",
        "tagloop",
        "Comprehend-Text1700000000000",
        f"{PREFIX}:flow-definition/flow",
        f"{PREFIX}:human-task-ui/ui",
        f"{PREFIX}:human-task-ui/tagloop",
        f"{PREFIX}:workteam/private-crowd/x",
        "arn:aws:iam::123456789012:role/a2i",
        "s3://bucket/out/",
        "file:///etc/",
        '{"taskObject": "x"}',
        "{% for %}",
        "<p>{{ task.input.x | to_json }}</p>",
        "Ascending",
        "Descending",
        "",
        "a" * 64,
        "\u0000",
        "é" * 10,
    ]
)
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | PLAUSIBLE,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=8) | PLAUSIBLE, children, max_size=3)
    ),
    max_leaves=8,
)


def _members(shape: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """A body with the shape's member names (a few of them), values plausible, nested or junk."""
    if shape.type_name != "structure" or depth > 3:
        return JUNK
    fields = {name: _members(member, depth + 1) | JUNK for name, member in shape.members.items()}
    return st.fixed_dictionaries({}, optional=fields) | JUNK


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("a2i-no-5xx")
    application = create_app(Settings(data_dir=root / "data"), start_workers=False)
    tagloop = application.state.tagloop
    tagloop.human_loops.create_task_ui("ui", "<crowd-form><p>{{ task.input.taskObject }}</p></crowd-form>")
    tagloop.human_loops.create_flow(
        FlowRequest(
            name="flow", task_ui="ui", title="t", description="d", task_count=1, output_path="s3://b/o/"
        )
    )
    key = tagloop.keys.create("admin", "admin")
    with TestClient(application) as client:
        yield {"client": client, "key": key}


def _signed(app: dict, method: str, path: str, raw: bytes, headers: dict[str, str]) -> Any:
    url = "http://testserver" + path
    request = AWSRequest(method=method, url=url, data=raw, headers=headers)
    key = app["key"]
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "sagemaker", REGION).add_auth(request)
    return app["client"].request(method, url, content=raw, headers=dict(request.headers.items()))


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@EXAMPLES
@given(data=st.data())
def test_no_sagemaker_input_gives_a_5xx(app, operation, data):
    body = data.draw(_members(SAGEMAKER.operation_model(operation).input_shape), label="body")
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"SageMaker.{operation}"}
    response = _signed(app, "POST", "/", raw, headers)
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert response.json()["__type"]


ROUTES = [
    ("POST", "/human-loops"),
    ("GET", "/human-loops"),
    ("POST", "/human-loops/stop"),
    ("GET", "/human-loops/{name}"),
    ("DELETE", "/human-loops/{name}"),
]
START = st.fixed_dictionaries(
    {},
    optional={
        "HumanLoopName": PLAUSIBLE | JUNK,
        "FlowDefinitionArn": PLAUSIBLE | JUNK,
        "HumanLoopInput": st.fixed_dictionaries({}, optional={"InputContent": PLAUSIBLE | JUNK}) | JUNK,
        "DataAttributes": JUNK,
    },
)
QUERY = st.fixed_dictionaries(
    {},
    optional={
        name: PLAUSIBLE
        | st.text(max_size=12)
        | st.sampled_from(["0", "101", "-1", "99999999999999999999", "2026-01-01T00:00:00Z", "x"])
        for name in (
            "FlowDefinitionArn",
            "CreationTimeAfter",
            "CreationTimeBefore",
            "SortOrder",
            "NextToken",
            "MaxResults",
        )
    },
)


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@EXAMPLES
@given(data=st.data())
def test_no_a2i_runtime_input_gives_a_5xx(app, method, path, data):
    name = data.draw(PLAUSIBLE | st.text(min_size=1, max_size=20), label="name")
    target = path.replace("{name}", quote(name, safe="") or "%20")
    query = data.draw(QUERY, label="query") if method == "GET" and "{name}" not in path else {}
    if query:
        target += "?" + "&".join(f"{quote(key)}={quote(value, safe='')}" for key, value in query.items())
    body = data.draw(START | JUNK, label="body") if method == "POST" else None
    raw = json.dumps(body).encode() if body is not None else b""
    response = _signed(app, method, target, raw, {"Content-Type": "application/json"})
    assert response.status_code < 500, (target, body, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["x-amzn-errortype"]


def _routes(routes: Any) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # however this FastAPI version keeps included routers
            found += _routes(route.original_router.routes)
        elif hasattr(route, "routes"):
            found += _routes(route.routes)
    return found


def test_every_a2i_route_declares_a_scope_and_refuses_anonymous_calls(app):
    client = app["client"]
    routes = [
        route
        for route in _routes(client.app.routes)
        if route.path.startswith(("/human-loops", "/review/loops"))
    ]
    assert len(routes) == 8
    admin_key = {"Authorization": f"Bearer {app['key']['secret']}"}
    for route in routes:
        calls = [d.call for d in route.dependant.dependencies]
        if route.path.startswith("/review/loops"):  # the loop pages: a signed-in web reviewer
            roles = [getattr(call, "required_role", None) for call in calls]
            assert "reviewer" in roles, f"{route.path} declares no web role"
        else:
            scopes = [getattr(call, "required_scope", None) for call in calls]
            assert any(scopes), f"{route.path} declares no scope"
        for method in route.methods:
            path = route.path.replace("{HumanLoopName}", "x").replace("{task_id}", "x")
            for headers in ({}, admin_key) if route.path.startswith("/review/loops") else ({},):
                response = client.request(method, path, json={}, headers=headers, follow_redirects=False)
                login = response.status_code == 303 and response.headers["location"].startswith("/login")
                assert response.status_code in (401, 403) or login, (
                    f"{method} {route.path} answered {response.status_code} with headers {sorted(headers)}"
                )
    public = [route.path for route in _routes(client.app.routes) if route.path.startswith("/a2i/")]
    assert public == ["/a2i/static/{name}"]  # the crowd elements' files: nothing else is open
