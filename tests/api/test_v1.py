"""The native /v1 API through the real ASGI app: classify, limits, keys and scopes, swaps."""

from __future__ import annotations

import csv
import json
import time
import urllib.error
import urllib.request

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.domain.records import Mode
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

from .conftest import auth


@pytest.fixture
def served(tmp_path, tickets, write_csv):
    """An app with the tickets classifier trained twice, an endpoint on v1, and three keys."""
    settings = Settings(data_dir=tmp_path / "data", endpoint_refresh_seconds=0.2)
    app = create_app(settings, start_workers=False)
    tagloop = app.state.tagloop
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data), version_name="second"))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", "v1")["job_id"])  # deploy
    keys = {
        scope: tagloop.keys.create(f"{scope}-key", scope)["secret"]
        for scope in ("classify", "review", "admin")
    }
    with TestClient(app) as client:
        yield client, tagloop, keys


def test_classify_one_text(served):
    client, tagloop, keys = served
    response = client.post(
        "/v1/endpoints/desk/classify",
        json={"text": "my vpn keeps dropping"},
        headers=auth(keys["classify"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "v1"
    assert body["endpoint"] == "desk"
    scores = [entry["score"] for entry in body["classes"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)  # the best 3 by default
    assert body["classes"][0]["name"] == "NETWORK"
    assert body["prediction_id"]
    tagloop.prediction_log.close()  # flush
    from tagloop.storage.repositories import PredictionRepository

    with tagloop.database.reading() as session:
        logged = PredictionRepository(session).get(body["prediction_id"])
    assert logged.text == "my vpn keeps dropping"
    assert logged.endpoint == "desk"
    assert [c["Name"] for c in logged.result["Classes"]] == [c["name"] for c in body["classes"]]


@pytest.mark.parametrize(("top", "expected"), [(0, 6), (1, 1), (5, 5), (50, 6)])
def test_classify_with_top(served, top, expected):
    client, _, keys = served
    every = client.post(
        "/v1/endpoints/desk/classify",
        json={"texts": ["my vpn keeps dropping"], "top": 0},
        headers=auth(keys["classify"]),
    ).json()["results"][0]["classes"]
    assert abs(sum(entry["score"] for entry in every) - 1) < 1e-6  # all classes: the whole distribution
    text = "my vpn keeps dropping"
    for body in ({"text": text, "top": top}, {"texts": [text], "top": top}):
        response = client.post("/v1/endpoints/desk/classify", json=body, headers=auth(keys["classify"]))
        assert response.status_code == 200, response.text
        answer = response.json()
        classes = answer["classes"] if "text" in body else answer["results"][0]["classes"]
        assert classes == every[:expected]


@pytest.mark.parametrize("top", [-1, "3", 1.5, True])
def test_classify_rejects_a_bad_top(served, top):
    client, _, keys = served
    response = client.post(
        "/v1/endpoints/desk/classify",
        json={"text": "my vpn keeps dropping", "top": top},
        headers=auth(keys["classify"]),
    )
    assert response.status_code == 422
    assert "top" in response.json()["error"]["message"]


def test_classify_many_texts(served):
    client, _, keys = served
    texts = ["printer jammed on floor 2", "refund the double charge", "   "]
    response = client.post("/v1/endpoints/desk/classify", json={"texts": texts}, headers=auth(keys["admin"]))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["classes"][0]["name"] for r in results[:2]] == ["HARDWARE", "BILLING"]
    assert results[2]["error"]["type"] == "InvalidRequestException"


def test_a_multi_label_endpoint_answers_labels(tmp_path, multi_label_csv):
    app = create_app(Settings(data_dir=tmp_path / "data", auth=False), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.training.train(TrainRequest(classifier="ml", data=str(multi_label_csv), mode=Mode.MULTI_LABEL))
    tagloop.queue.run_now(tagloop.endpoints.create("ml", "ml", "v1")["job_id"])
    text = "the router and the dock both fail"
    with TestClient(
        app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000)
    ) as client:  # no-auth: loopback
        one = client.post("/v1/endpoints/ml/classify", json={"text": text}).json()
        many = client.post(
            "/v1/endpoints/ml/classify", json={"texts": [text] * 9 + [""]}
        ).json()  # in a thread
    assert set(one) == {"model_version", "endpoint", "labels", "prediction_id"}
    assert {entry["name"] for entry in one["labels"]} == {"HW", "NET"}
    assert all(set(entry) == {"name", "score"} for entry in one["labels"])
    for result in many["results"][:9]:
        assert result["labels"] == one["labels"] and result["prediction_id"]
    assert many["results"][9] == {"error": {"type": "InvalidRequestException", "message": "empty text"}}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"text": "x" * 100_001}, 413, "TAGLOOP_MAX_CLASSIFY_BYTES"),
        ({"texts": ["a"] * 1_001}, 413, "TAGLOOP_MAX_CLASSIFY_DOCUMENTS"),
        ({}, 422, "exactly one of"),
        ({"text": "a", "texts": ["b"]}, 422, "exactly one of"),
        ({"text": 5}, 422, "text"),
    ],
)
def test_classify_limits_and_bad_bodies(served, body, status, needle):
    client, _, keys = served
    response = client.post("/v1/endpoints/desk/classify", json=body, headers=auth(keys["classify"]))
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_body_size_limit(served):
    client, tagloop, keys = served
    tagloop.settings.max_body_bytes = 1_000
    response = client.post(
        "/v1/endpoints/desk/classify", json={"text": "a" * 2_000}, headers=auth(keys["classify"])
    )
    assert response.status_code == 413
    assert "TAGLOOP_MAX_BODY_BYTES" in response.json()["error"]["message"]


def test_unknown_endpoint_is_404_in_the_error_shape(served):
    client, _, keys = served
    response = client.post("/v1/endpoints/nope/classify", json={"text": "hi"}, headers=auth(keys["classify"]))
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "ResourceNotFoundException"


def test_credentials_and_scopes(served):
    client, tagloop, keys = served
    url, body = "/v1/endpoints/desk/classify", {"text": "vpn"}
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body, headers=auth("not-a-key")).status_code == 401
    assert client.post(url, json=body, headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.post(url, json=body, headers=auth(keys["review"])).status_code == 403
    assert client.get("/v1/endpoints", headers=auth(keys["classify"])).status_code == 403
    assert client.get("/v1/endpoints", headers=auth(keys["admin"])).status_code == 200
    classify_key = next(k for k in tagloop.keys.list() if k["scope"] == "classify")
    tagloop.keys.revoke(classify_key["access_key_id"])
    assert client.post(url, json=body, headers=auth(keys["classify"])).status_code == 401


def api_routes(routes) -> list[APIRoute]:
    """Every APIRoute, looking inside included routers (however this FastAPI version keeps them)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += api_routes(route.original_router.routes)
        elif hasattr(route, "routes"):
            found += api_routes(route.routes)
    return found


def test_every_v1_route_declares_a_scope_and_refuses_anonymous_calls(served):
    client, _, _ = served
    routes = [r for r in api_routes(client.app.routes) if r.path.startswith("/v1")]
    documented = {path for path in client.app.openapi()["paths"] if path.startswith("/v1")}
    assert {r.path for r in routes} == documented
    assert len(routes) >= 10
    for route in routes:
        scopes = [getattr(d.call, "required_scope", None) for d in route.dependant.dependencies]
        assert any(scopes), f"{route.path} declares no scope"
        for method in route.methods:
            path = route.path.replace("{", "").replace("}", "")
            response = client.request(method, path, json={})
            assert response.status_code == 401, f"{method} {route.path} answered {response.status_code}"


def test_repointing_an_endpoint_is_followed_within_a_second(served):
    client, tagloop, keys = served
    url, body, headers = "/v1/endpoints/desk/classify", {"text": "wifi is down"}, auth(keys["classify"])
    assert client.post(url, json=body, headers=headers).json()["model_version"] == "v1"
    response = client.patch("/v1/endpoints/desk", json={"version": "second"}, headers=auth(keys["admin"]))
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["desired_version"]) == ("UPDATING", "second")
    assert client.post(url, json=body, headers=headers).json()["model_version"] == "v1"  # until loaded
    tagloop.queue.run_now(response.json()["job_id"])  # what a worker does: load, verify, switch
    deadline = time.monotonic() + 1.0
    while client.post(url, json=body, headers=headers).json()["model_version"] != "second":
        assert time.monotonic() < deadline, "the endpoint still serves v1 after a second"
        time.sleep(0.05)


def test_endpoint_management(served):
    client, tagloop, keys = served
    admin = auth(keys["admin"])
    created = client.post("/v1/endpoints", json={"name": "other", "classifier": "desk"}, headers=admin)
    assert created.status_code == 201, created.text
    # no version: it follows the classifier's champion (the version endpoint desk serves), not the newest
    assert (created.json()["version"], created.json()["status"], created.json()["follows"]) == (
        "v1",
        "CREATING",
        True,
    )
    classify = auth(keys["classify"])
    refused = client.post("/v1/endpoints/other/classify", json={"text": "vpn"}, headers=classify)
    assert refused.status_code == 503  # never a 200 with an empty answer
    assert refused.json()["error"]["type"] == "ResourceUnavailableException"
    tagloop.queue.run_now(created.json()["job_id"])
    assert client.get("/v1/endpoints/other", headers=admin).json()["status"] == "IN_SERVICE"
    assert (
        client.post("/v1/endpoints/other/classify", json={"text": "vpn"}, headers=classify).status_code == 200
    )
    assert (
        client.post("/v1/endpoints", json={"name": "other", "classifier": "desk"}, headers=admin).status_code
        == 409
    )
    assert {e["name"] for e in client.get("/v1/endpoints", headers=admin).json()} == {"desk", "other"}
    assert client.delete("/v1/endpoints/other", headers=admin).status_code == 204
    assert client.get("/v1/endpoints/other", headers=admin).status_code == 404


def test_metrics_are_exposed(served):
    client, _, keys = served
    client.post("/v1/endpoints/desk/classify", json={"text": "vpn"}, headers=auth(keys["classify"]))
    text = client.get("/metrics", headers=auth(keys["admin"])).text
    assert 'tagloop_requests_total{method="POST",route="/v1/endpoints/{name}/classify",status="200"}' in text
    assert "tagloop_request_seconds_bucket" in text
    assert 'tagloop_predictions_total{endpoint="desk",label="NETWORK"}' in text
    assert "tagloop_models_loaded 1.0" in text


def test_a_key_name_outside_the_name_rules_is_refused(served):
    client, tagloop, keys = served
    for name in ("nul\x00inside", "x" * 100_000, "with space"):
        response = client.post(
            "/v1/keys", json={"name": name, "scope": "classify"}, headers=auth(keys["admin"])
        )
        assert response.status_code == 422, response.text  # the body's schema holds the name rules
        assert response.json()["error"]["message"].startswith("body.name:")
    assert len(tagloop.keys.list()) == 3


# ---- clients written for an API Gateway (IAM auth) + Lambda in front of Comprehend -----------
# The AWS sample's API client signs a POST for `execute-api` with botocore's SigV4Auth, sends
# {"Text": ...} as application/json and prints the JSON it gets back; here it runs unchanged
# against a real tagloop server on a loopback port, with only its URL and keys changed.

REGION = "us-east-1"


@pytest.fixture(scope="module")
def live(tmp_path_factory, tickets, serve_in_thread):
    """A real uvicorn server with the tickets classifier served as ``desk`` and keys by scope."""
    root = tmp_path_factory.mktemp("invoke")
    data = root / "tickets.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    app = create_app(Settings(data_dir=root / "data", aws_region=REGION), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    for endpoint in ("desk", "service-desk"):  # service-desk: the README's
        tagloop.queue.run_now(tagloop.endpoints.create(endpoint, "desk", "v1")["job_id"])
    keys = {scope: tagloop.keys.create(f"{scope}-key", scope) for scope in ("classify", "review")}
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}", keys, tagloop


def sample_client(
    url: str, key: dict, text: str, service: str = "execute-api", region: str = REGION, secret: str = ""
) -> tuple[int, dict]:
    """The AWS sample's apiclientinvoke.py, as written (SigV4Auth for execute-api, {"Text"},
    Content-Type application/json), with only the HTTP call made by the standard library."""
    credentials = Credentials(key["access_key_id"], secret or key["secret"])
    data = json.dumps({"Text": text})
    request = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, service, region).add_auth(request)
    sent = urllib.request.Request(url, data=data.encode(), headers=dict(request.headers), method="POST")
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


TICKET = "the vpn client drops every few minutes when I work from home"


def test_the_sample_client_unmodified_on_invoke_gets_the_lambdas_answer(live):
    url, keys, tagloop = live
    status, answer = sample_client(f"{url}/v1/endpoints/desk/invoke", keys["classify"], TICKET)
    assert status == 200, answer
    assert set(answer) == {"statusCode", "body"} and answer["statusCode"] == 200
    assert [set(entry) for entry in answer["body"]] == [{"Name", "Score"}] * 3  # Comprehend's best 3
    assert answer["body"][0]["Name"] == "NETWORK"
    scores = [entry["Score"] for entry in answer["body"]]
    assert scores == sorted(scores, reverse=True)
    # the same text through Bearer: the same classes, and the prediction's id in a header
    bearer_answer = httpx.post(
        f"{url}/v1/endpoints/desk/invoke", json={"Text": TICKET}, headers=auth(keys["classify"]["secret"])
    )
    assert bearer_answer.status_code == 200
    assert bearer_answer.json() == answer
    prediction_id = bearer_answer.headers["x-tagloop-prediction-id"]
    from tagloop.storage.tables import PredictionRow

    deadline = time.monotonic() + 30  # the log writes from its own process, in batches
    while True:
        with tagloop.database.reading() as session:
            logged = session.get(PredictionRow, prediction_id)
        if logged is not None:
            break
        assert time.monotonic() < deadline, "the invoked prediction was never logged"
        time.sleep(0.1)
    assert (logged.text, logged.endpoint, logged.result["Classes"]) == (TICKET, "desk", answer["body"])


def test_the_sample_client_on_classify_gets_the_native_answer(live):
    url, keys, _ = live
    status, answer = sample_client(f"{url}/v1/endpoints/desk/classify", keys["classify"], TICKET)
    assert status == 200, answer
    assert answer["classes"][0]["name"] == "NETWORK" and answer["prediction_id"]
    by_bearer = httpx.post(
        f"{url}/v1/endpoints/desk/classify", json={"text": TICKET}, headers=auth(keys["classify"]["secret"])
    )
    assert by_bearer.status_code == 200
    assert by_bearer.json()["classes"] == answer["classes"]  # Bearer works as before, `text` too


@pytest.mark.parametrize("route", ["classify", "invoke"])
def test_signed_requests_are_checked_as_the_comprehend_api_checks_them(live, route):
    """Wrong service, wrong region, wrong secret, unknown key, scope too narrow: refused, in the
    route's shape; a signed request replayed with another body is refused too."""
    url, keys, _ = live
    target = f"{url}/v1/endpoints/desk/{route}"

    def refused(status: int, answer: dict, code: int, kind: str, needle: str) -> None:
        assert status == code, answer
        if route == "invoke":
            assert answer["statusCode"] == code
            error = answer["body"]
        else:
            error = answer["error"]
        assert error["type"] == kind, error
        assert needle in error["message"], error

    status, answer = sample_client(target, keys["classify"], TICKET, service="comprehend")
    refused(status, answer, 401, "InvalidSignatureException", "scoped to correct service: 'execute-api'")
    status, answer = sample_client(target, keys["classify"], TICKET, region="eu-west-1")
    refused(status, answer, 401, "InvalidSignatureException", "valid region, not 'eu-west-1'")
    status, answer = sample_client(target, keys["classify"], TICKET, secret="not-the-secret")
    refused(status, answer, 401, "InvalidSignatureException", "does not match the signature")
    status, answer = sample_client(target, {**keys["classify"], "access_key_id": "TLNOSUCHKEY"}, TICKET)
    refused(status, answer, 401, "UnrecognizedClientException", "security token")
    status, answer = sample_client(target, keys["review"], TICKET)
    refused(status, answer, 403, "AccessDeniedException", "needs 'classify'")

    signed = AWSRequest(
        method="POST", url=target, data=b'{"Text": "printer"}', headers={"Content-Type": "application/json"}
    )
    key = keys["classify"]
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "execute-api", REGION).add_auth(signed)
    replayed = httpx.post(target, content=b'{"Text": "refund"}', headers=dict(signed.headers))
    refused(replayed.status_code, replayed.json(), 401, "InvalidSignatureException", "does not match")
    unsigned_type = AWSRequest(method="POST", url=target, data=b'{"Text": "printer"}')
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "execute-api", REGION).add_auth(unsigned_type)
    sent = httpx.post(
        target,
        content=b'{"Text": "printer"}',
        headers={**dict(unsigned_type.headers), "Content-Type": "application/json"},
    )
    refused(sent.status_code, sent.json(), 401, "InvalidSignatureException", "'Content-Type' must be a")
    anonymous = httpx.post(target, json={"Text": "printer"})
    refused(anonymous.status_code, anonymous.json(), 401, "UnrecognizedClientException", "AWS Signature V4")


def test_invoke_errors_come_in_the_lambdas_envelope(live):
    url, keys, _ = live
    status, answer = sample_client(f"{url}/v1/endpoints/nowhere/invoke", keys["classify"], TICKET)
    assert (status, answer["statusCode"], answer["body"]["type"]) == (404, 404, "ResourceNotFoundException")
    assert "nowhere" in answer["body"]["message"]
    status, answer = sample_client(f"{url}/v1/endpoints/desk/invoke", keys["classify"], "")
    assert (status, answer) == (
        400,
        {"statusCode": 400, "body": {"type": "InvalidRequestException", "message": "empty text"}},
    )
    headers = auth(keys["classify"]["secret"])
    for body, code in (
        ({"Texts": ["a"]}, 422),
        ({"Text": 5}, 422),
        ([1], 422),
        ({"Text": "x" * 100_001}, 413),
    ):
        response = httpx.post(f"{url}/v1/endpoints/desk/invoke", json=body, headers=headers)
        assert response.status_code == code, (body, response.text)
        assert set(response.json()) == {"statusCode", "body"} and response.json()["statusCode"] == code
    wrong_method = httpx.get(f"{url}/v1/endpoints/desk/invoke", headers=headers)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["statusCode"] == 405 and wrong_method.headers["allow"] == "POST"


def test_a_single_text_that_cannot_be_classified_is_refused_with_the_reason(served):
    """Issue 12, item 5: one empty text answered 200 with an error inside; now 400 with the
    reason. With `texts`, each text's error stays in its place."""
    client, _, keys = served
    for body in ({"text": ""}, {"Text": "   "}):
        response = client.post("/v1/endpoints/desk/classify", json=body, headers=auth(keys["classify"]))
        assert response.status_code == 400, response.text
        assert response.json() == {"error": {"type": "InvalidRequestException", "message": "empty text"}}
    many = client.post(
        "/v1/endpoints/desk/classify", json={"texts": ["", "vpn down"]}, headers=auth(keys["classify"])
    )
    assert many.status_code == 200
    assert many.json()["results"][0] == {
        "error": {"type": "InvalidRequestException", "message": "empty text"}
    }
    both = client.post(
        "/v1/endpoints/desk/classify", json={"text": "a", "Text": "b"}, headers=auth(keys["classify"])
    )
    assert both.status_code == 422 and "not both" in both.json()["error"]["message"]


def readme_snippet(name: str) -> str:
    """The Python code of the README between ``<!-- README-{name}-START/END -->``."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    block = text.split(f"<!-- README-{name}-START -->")[1].split(f"<!-- README-{name}-END -->")[0]
    return block.strip().removeprefix("```python").removesuffix("```")


def test_the_readmes_invoke_client_runs_as_written(live, tmp_path, capsys):
    """The README's client, with only the key file's path and the server's port changed."""
    url, keys, _ = live
    key_file = tmp_path / "admin-key.json"
    key_file.write_text(json.dumps(keys["classify"]), encoding="utf-8")
    code = readme_snippet("INVOKE")
    assert '"execute-api"' in code and '{"Text":' in code and "urllib.request" in code
    code = code.replace("tagloop-data/admin-key.json", str(key_file)).replace("http://127.0.0.1:8000", url)
    exec(compile(code, "README.md", "exec"), {})
    printed = json.loads(capsys.readouterr().out)
    assert printed["statusCode"] == 200 and printed["body"][0]["Name"] == "NETWORK"


def test_logged_predictions_are_listed_newest_first_for_admins(served):
    client, tagloop, keys = served
    texts = ["my vpn keeps dropping", "the printer is jammed again", "I was charged twice this month"]
    ids = []
    for text in texts:
        response = client.post(
            "/v1/endpoints/desk/classify", json={"text": text}, headers=auth(keys["classify"])
        )
        ids.append(response.json()["prediction_id"])
    tagloop.prediction_log.close()  # flush
    assert client.get("/v1/predictions", headers=auth(keys["classify"])).status_code == 403
    admin = auth(keys["admin"])
    first = client.get("/v1/predictions", params={"endpoint": "desk", "limit": 2}, headers=admin)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["id"] for item in page["predictions"]] == [ids[2], ids[1]]
    newest = page["predictions"][0]
    assert (newest["text"], newest["endpoint"], newest["classifier"], newest["version"]) == (
        texts[2],
        "desk",
        "desk",
        "v1",
    )
    assert (
        newest["label"] == newest["classes"][0]["name"] and newest["score"] == newest["classes"][0]["score"]
    )
    rest = client.get(
        "/v1/predictions", params={"endpoint": "desk", "cursor": page["next_cursor"]}, headers=admin
    )
    assert [item["id"] for item in rest.json()["predictions"]] == [ids[0]]
    assert rest.json()["next_cursor"] is None
    network = client.get("/v1/predictions", params={"label": "NETWORK", "since": "1h"}, headers=admin).json()
    assert [item["id"] for item in network["predictions"]] == [ids[0]]
    wrong = client.get("/v1/predictions", params={"since": "last week"}, headers=admin)
    assert wrong.status_code == 400 and "since: 'last week' is not a date" in wrong.json()["error"]["message"]
