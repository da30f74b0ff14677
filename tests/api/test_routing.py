"""Review routing through every door: the policy per endpoint (/v1, scopes, validation), native
classify (one text, several), invoke, Comprehend's ClassifyDocument (answer unchanged), and a
task store that fails (the answer says not routed, never a 5xx)."""

from __future__ import annotations

import json
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.testclient import TestClient
from sqlalchemy import select

from tagloop.api.server import create_app
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.tables import ReviewTaskRow

from .conftest import auth

REGION = "us-east-1"
ROUTE_ALL = {"threshold": 1.0}  # every best score is below 1: every prediction routed
ROUTE_NONE = {"threshold": 0.0, "audit": 0.0, "required": 2}  # active, routes nothing (score >= 0)


@pytest.fixture
def served(tmp_path, tickets, write_csv):
    settings = Settings(data_dir=tmp_path / "data", endpoint_refresh_seconds=0.2, aws_region=REGION)
    app = create_app(settings, start_workers=False)
    tagloop = app.state.tagloop
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", "v1")["job_id"])
    keys = {scope: tagloop.keys.create(f"{scope}-key", scope) for scope in ("classify", "review", "admin")}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, tagloop, keys


def put_routing(client, keys, policy: dict) -> dict:
    response = client.put("/v1/endpoints/desk/routing", json=policy, headers=auth(keys["admin"]))
    assert response.status_code == 200, response.text
    return response.json()


def tasks(tagloop) -> dict[str, ReviewTaskRow]:
    """The stored tasks, once the writer has written what it was handed (an answer that says
    routed leaves with its task journalled, not yet committed)."""
    deadline = time.monotonic() + 30
    while tagloop.review_tasks.pending > 0:
        assert time.monotonic() < deadline, "the task writer did not catch up in 30 s"
        time.sleep(0.01)
    with tagloop.database.reading() as session:
        return {row.id: row for row in session.scalars(select(ReviewTaskRow))}


def test_policy_is_read_by_review_and_changed_by_admin_only(served):
    client, _, keys = served
    url = "/v1/endpoints/desk/routing"
    shown = client.get(url, headers=auth(keys["review"]))
    assert shown.status_code == 200
    assert shown.json() == {
        "endpoint": "desk",
        "active": False,
        "threshold": None,
        "margin": None,
        "band": None,
        "labels": [],
        "audit": 0.0,
        "required": 1,
        "lease_seconds": 300,
        "lifetime_seconds": None,
    }
    assert client.get(url, headers=auth(keys["classify"])).status_code == 403
    for key in ("classify", "review"):
        assert client.put(url, json=ROUTE_ALL, headers=auth(keys[key])).status_code == 403
    assert client.get(url).status_code == 401
    changed = put_routing(
        client, keys, {"threshold": 0.6, "audit": 0.05, "labels": ["NETWORK"], "required": 3}
    )
    assert changed["active"] and changed["threshold"] == 0.6 and changed["required"] == 3
    assert client.get(url, headers=auth(keys["admin"])).json() == changed
    off = put_routing(client, keys, {})
    assert not off["active"]
    assert client.get("/v1/endpoints/nope/routing", headers=auth(keys["admin"])).status_code == 404


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"band": [0.7, 0.2]}, "band"),
        ({"audit": -0.1}, "audit"),
        ({"required": 4}, "required"),
        ({"required": 0}, "required"),
        ({"lease_seconds": 5}, "lease_seconds"),
        ({"lifetime_seconds": 10**9}, "lifetime_seconds"),
        ({"labels": ["A", "A"]}, "labels"),
        ({"bogus": 1}, "bogus"),
        ({"threshold": "high"}, "threshold"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(served, policy, field):
    client, tagloop, keys = served
    response = client.put("/v1/endpoints/desk/routing", json=policy, headers=auth(keys["admin"]))
    assert 400 <= response.status_code < 500
    assert field in response.text
    assert tagloop.endpoints.routing("desk")["active"] is False  # nothing stored


def test_native_classify_one_and_several_texts(served):
    client, tagloop, keys = served
    url = "/v1/endpoints/desk/classify"
    plain = client.post(url, json={"text": "my vpn keeps dropping"}, headers=auth(keys["classify"])).json()
    assert "review" not in plain  # routing off: the answer as before
    put_routing(client, keys, ROUTE_ALL | {"required": 2, "lifetime_seconds": 3600})
    one = client.post(url, json={"text": "my vpn keeps dropping"}, headers=auth(keys["classify"])).json()
    review = one["review"]
    assert review["routed"] is True and review["reason"] == "low_confidence"
    stored = tasks(tagloop)[review["task_id"]]  # journalled before the answer left, then committed
    assert stored.text == "my vpn keeps dropping" and stored.endpoint == "desk"
    assert stored.prediction_id == one["prediction_id"] and stored.reason == "low_confidence"
    assert stored.prediction["labels"] == [c["name"] for c in one["classes"]]
    assert stored.required == 2 and stored.expires_at is not None and stored.status == "InProgress"
    assert set(stored.choices) >= {c["name"] for c in one["classes"]} and len(stored.choices) == 6
    assert abs(stored.uncertainty - (1 - one["classes"][0]["score"])) < 1e-9
    texts = ["printer jammed again", "", "cannot log in", "refund my invoice"] * 3  # 12: the threadpool path
    several = client.post(url, json={"texts": texts}, headers=auth(keys["classify"])).json()["results"]
    assert "review" not in several[1] and several[1]["error"]  # an empty text is not routed
    routed = [r["review"]["task_id"] for r in several if "error" not in r]
    assert len(routed) == 9 and set(routed) <= set(tasks(tagloop))
    put_routing(client, keys, ROUTE_NONE)
    none = client.post(url, json={"texts": texts[:3]}, headers=auth(keys["classify"])).json()["results"]
    assert [r.get("review") for r in none] == [{"routed": False}, None, {"routed": False}]


def test_audit_routes_a_share(served):
    client, _, keys = served
    put_routing(client, keys, {"audit": 0.5})
    results = client.post(
        "/v1/endpoints/desk/classify", json={"texts": ["vpn drops"] * 400}, headers=auth(keys["classify"])
    ).json()["results"]
    audited = [r["review"] for r in results if r["review"]["routed"]]
    assert 100 < len(audited) < 300  # 200 expected; 6 standard deviations either way
    assert {r["reason"] for r in audited} == {"audit"}


def test_invoke_names_the_task_in_headers(served):
    client, tagloop, keys = served
    url = "/v1/endpoints/desk/invoke"
    before = client.post(url, json={"Text": "vpn drops"}, headers=auth(keys["classify"]))
    assert "x-tagloop-review-task-id" not in before.headers
    put_routing(client, keys, {"labels": ["NETWORK"]})
    after = client.post(url, json={"Text": "vpn drops"}, headers=auth(keys["classify"]))
    assert after.json() == before.json()  # the body stays the Lambda's
    task_id = after.headers["x-tagloop-review-task-id"]
    assert after.headers["x-tagloop-review-reason"] == "label"
    assert tasks(tagloop)[task_id].reason == "label"


def signed_classify_document(client, key: dict, text: str) -> bytes:
    body = json.dumps(
        {
            "Text": text,
            "EndpointArn": f"arn:aws:comprehend:{REGION}:123456789012:document-classifier-endpoint/desk",
        }
    )
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "Comprehend_20171127.ClassifyDocument",
    }
    request = AWSRequest(method="POST", url="http://127.0.0.1/", data=body, headers=headers)
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "comprehend", REGION).add_auth(request)
    response = client.post("/", content=body.encode(), headers=dict(request.headers))
    assert response.status_code == 200, response.text
    return response.content


def test_comprehend_answer_is_unchanged_and_its_task_is_written(served):
    client, tagloop, keys = served
    text = "my vpn keeps dropping"
    before = signed_classify_document(client, keys["classify"], text)
    put_routing(client, keys, ROUTE_ALL)
    after = signed_classify_document(client, keys["classify"], text)
    assert after == before  # the same bytes: Comprehend's answer names no task
    deadline = time.monotonic() + 30  # written without the answer waiting for it
    while not tasks(tagloop):
        assert time.monotonic() < deadline, "the routed ClassifyDocument left no task"
        time.sleep(0.05)
    (task,) = tasks(tagloop).values()
    assert task.text == text and task.reason == "low_confidence"


def test_a_journal_that_cannot_be_written_says_not_routed(served, tmp_path):
    client, tagloop, keys = served
    put_routing(client, keys, ROUTE_ALL)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the journal's folder should be")
    tagloop.review_tasks.close()
    tagloop.review_tasks.use_process(tagloop.database.url)
    tagloop.review_tasks.use_journal(blocked / "journal", lambda tasks: None)
    response = client.post(
        "/v1/endpoints/desk/classify", json={"texts": ["vpn", "printer"]}, headers=auth(keys["classify"])
    )
    assert response.status_code == 200
    assert [r["review"] for r in response.json()["results"]] == [{"routed": False}] * 2
    invoked = client.post("/v1/endpoints/desk/invoke", json={"Text": "vpn"}, headers=auth(keys["classify"]))
    assert invoked.status_code == 200 and "x-tagloop-review-task-id" not in invoked.headers
    assert tasks(tagloop) == {}


def test_a_task_store_that_fails_says_not_routed_when_answers_wait_for_the_commit(served):
    """TAGLOOP_ROUTING_WAIT_FOR_COMMIT=true: no journal; a failed commit answers not routed."""
    client, tagloop, keys = served
    put_routing(client, keys, ROUTE_ALL)

    tagloop.review_tasks.close()  # its writer process now writes where it cannot, with no journal
    tagloop.review_tasks.use_process(f"sqlite:///{tagloop.settings.data_dir}/missing/folder/tagloop.db")
    response = client.post(
        "/v1/endpoints/desk/classify", json={"texts": ["vpn", "printer"]}, headers=auth(keys["classify"])
    )
    assert response.status_code == 200
    assert [r["review"] for r in response.json()["results"]] == [{"routed": False}] * 2
    invoked = client.post("/v1/endpoints/desk/invoke", json={"Text": "vpn"}, headers=auth(keys["classify"]))
    assert invoked.status_code == 200 and "x-tagloop-review-task-id" not in invoked.headers
    assert tasks(tagloop) == {}


def test_policy_is_followed_by_other_processes(served, tmp_path):
    """Another Tagloop on the same database (as another server process) picks the change up."""
    client, tagloop, keys = served
    other = create_app(tagloop.settings, start_workers=False).state.tagloop
    try:
        assert other.endpoints.serving("desk").routing is None
        other.endpoints.follow()
        put_routing(client, keys, ROUTE_ALL)
        deadline = time.monotonic() + 30
        while (serving := other.endpoints.cached("desk")) is None or serving.routing is None:
            assert time.monotonic() < deadline, "the other process never saw the policy"
            time.sleep(0.05)
        assert serving.routing.threshold == 1.0
    finally:
        other.close()


@pytest.mark.parametrize("wait", [False, True])
def test_routing_wait_for_commit_turns_the_journal_off(tmp_path, wait):
    app = create_app(Settings(data_dir=tmp_path / "data", routing_wait_for_commit=wait), start_workers=False)
    try:
        assert (app.state.tagloop.review_tasks._journal is None) is wait
    finally:
        app.state.tagloop.close()
