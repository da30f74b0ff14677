"""The /v1 review routes through the real app with real keys: the reviewer's loop (next,
answer, skip, undo), moderation, listing and paging, figures, the export of verified
documents, and what callers with too narrow a key, or bad input, get."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask, Queue
from tagloop.settings import Settings
from tagloop.storage.repositories import ClassifierRepository

from .conftest import auth, error_of

CHOICES = ("BILLING", "EMAIL", "NETWORK")


@pytest.fixture
def served(tmp_path):
    """An app with the classifier `desk` (no model needed), keys of each scope (two review
    keys) and a client; ``add(n, **fields)`` queues tasks."""
    app = create_app(Settings(data_dir=tmp_path / "data"), start_workers=False)
    tagloop = app.state.tagloop
    with tagloop.database.transaction() as session:
        desk = ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id
    keys = {
        name: tagloop.keys.create(f"{name}-key", name.rstrip("2"))
        for name in ("classify", "review", "review2", "admin")
    }

    def add(count: int = 1, **fields) -> list[str]:
        values = {
            "mode": Mode.MULTI_CLASS,
            "choices": CHOICES,
            "reason": "low_confidence",
            "classifier_id": desk,
            "prediction": {"labels": ["NETWORK", "EMAIL", "BILLING"], "scores": [0.5, 0.3, 0.2]},
            "uncertainty": 0.5,
        } | fields
        return tagloop.review.add_tasks([NewTask(text=f"ticket {n}", **values) for n in range(count)])

    with TestClient(app) as client:
        yield client, tagloop, keys, add


def test_a_reviewer_takes_answers_skips_and_undoes(served):
    client, _, keys, add = served
    first, second = add(2)
    me = auth(keys["review"])
    task = client.post("/v1/review/next", headers=me)
    assert task.status_code == 200, task.text
    got = task.json()
    assert got["id"] in (first, second) and got["leased_until"] and got["answers"] is None
    assert got["choices"] == ["NETWORK", "EMAIL", "BILLING"]
    assert client.post("/v1/review/next", json={}, headers=me).json()["id"] == got["id"]  # same lease
    answered = client.post(
        f"/v1/review/tasks/{got['id']}/answer", json={"labels": ["EMAIL"], "seconds": 2.5}, headers=me
    )
    assert answered.status_code == 200, answered.text
    assert (answered.json()["status"], answered.json()["final_labels"]) == ("Completed", ["EMAIL"])
    other = client.post("/v1/review/next", json={"classifier": "desk"}, headers=me).json()
    assert other["id"] != got["id"]
    assert client.post(f"/v1/review/tasks/{other['id']}/skip", headers=me).status_code == 204
    assert client.post("/v1/review/next", headers=me).json()["id"] == other["id"]  # only one left
    stats = client.get("/v1/review/stats", params={"classifier": "desk"}, headers=me).json()
    assert stats == {"pending": 1, "moderate": 0, "mine_today": 1, "mine_total": 1}
    undone = client.post("/v1/review/undo", headers=me)
    assert undone.status_code == 200 and undone.json()["id"] == got["id"]
    assert undone.json()["status"] == "InProgress" and undone.json()["leased_until"]
    assert client.post("/v1/review/undo", headers=me).status_code == 204  # nothing left to undo
    # the verified document came and went with the answer
    assert client.get("/v1/classifiers/desk/verified", headers=auth(keys["admin"])).text == ""


def test_an_empty_queue_is_204(served):
    client, _, keys, _ = served
    response = client.post("/v1/review/next", json={"queue": "review"}, headers=auth(keys["review"]))
    assert response.status_code == 204 and response.content == b""


def test_answering_without_a_lease_or_twice_is_409(served):
    client, _, keys, add = served
    (task_id,) = add(1, required=2)
    url = f"/v1/review/tasks/{task_id}/answer"
    me, other = auth(keys["review"]), auth(keys["review2"])
    assert "holds no lease" in error_of(client.post(url, json={"labels": ["EMAIL"]}, headers=me), 409)
    assert client.post("/v1/review/next", headers=me).json()["id"] == task_id
    assert client.post(url, json={"labels": ["EMAIL"]}, headers=me).status_code == 200
    assert "already answered" in error_of(client.post(url, json={"labels": ["EMAIL"]}, headers=me), 409)
    assert error_of(client.post(f"/v1/review/tasks/{task_id}/skip", headers=other), 409)
    assert client.post("/v1/review/next", headers=me).status_code == 204  # never the same task twice


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/review/tasks/nope", None),
        ("post", "/v1/review/tasks/nope/answer", {"labels": ["EMAIL"]}),
        ("post", "/v1/review/tasks/nope/skip", None),
        ("post", "/v1/review/tasks/nope/moderate", {"labels": ["EMAIL"]}),
        ("post", "/v1/review/tasks/nope/stop", None),
        ("get", "/v1/review/agreement?classifier=nope", None),
        ("get", "/v1/review/tasks?classifier=nope", None),
        ("post", "/v1/review/next", {"classifier": "nope"}),
        ("get", "/v1/classifiers/nope/verified", None),
    ],
)
def test_unknown_ids_and_names_are_404(served, method, path, body):
    client, _, keys, _ = served
    response = client.request(method, path, json=body, headers=auth(keys["admin"]))
    assert "nope" in error_of(response, 404)


def test_unknown_labels_are_400_naming_the_label(served):
    client, _, keys, add = served
    (task_id,) = add(1)
    me = auth(keys["review"])
    client.post("/v1/review/next", headers=me)
    url = f"/v1/review/tasks/{task_id}/answer"
    assert "'PRINTER'" in error_of(client.post(url, json={"labels": ["EMAIL", "PRINTER"]}, headers=me), 400)
    assert error_of(client.post(url, json={"labels": ["EMAIL", "BILLING"]}, headers=me), 400)  # multi-class
    moderate = f"/v1/review/tasks/{task_id}/moderate"
    assert "'X'" in error_of(client.post(moderate, json={"labels": ["X"]}, headers=auth(keys["admin"])), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"labels": ["EMAIL"] * 1_001},
        {"labels": ["E" * 5_001]},
        {"labels": [""]},
        {"labels": "EMAIL"},
        {"labels": [1]},
        {},
        {"labels": ["EMAIL"], "seconds": -1},
        {"labels": ["EMAIL"], "seconds": 1e300},
        {"labels": ["EMAIL"], "seconds": "soon"},
    ],
    ids=["many", "long", "empty", "string", "number", "none", "negative", "huge", "text"],
)
def test_bad_answers_are_refused_before_the_queue(served, body):
    client, _, keys, add = served
    (task_id,) = add(1)
    me = auth(keys["review"])
    client.post("/v1/review/next", headers=me)
    response = client.post(f"/v1/review/tasks/{task_id}/answer", json=body, headers=me)
    assert response.json()["error"]["type"] == "InvalidRequestException"
    assert response.status_code == 422, response.text
    assert client.post("/v1/review/next", headers=me).json()["answered"] == 0


def test_a_huge_body_is_refused_whole(served):
    client, tagloop, keys, add = served
    (task_id,) = add(1)
    tagloop.settings.max_body_bytes = 1_000_000
    body = json.dumps({"labels": ["EMAIL" * 1000] * 1000})
    response = client.post(
        f"/v1/review/tasks/{task_id}/answer",
        content=body,
        headers=auth(keys["review"]) | {"Content-Type": "application/json"},
    )
    assert error_of(response, 413)


def test_a_classify_key_gets_403_everywhere(served):
    client, _, keys, add = served
    (task_id,) = add(1)
    calls = [
        ("get", "/v1/review/tasks", None),
        ("get", f"/v1/review/tasks/{task_id}", None),
        ("post", "/v1/review/next", {}),
        ("post", f"/v1/review/tasks/{task_id}/answer", {"labels": ["EMAIL"]}),
        ("post", f"/v1/review/tasks/{task_id}/skip", None),
        ("post", "/v1/review/undo", None),
        ("post", f"/v1/review/tasks/{task_id}/moderate", {"labels": ["EMAIL"]}),
        ("post", f"/v1/review/tasks/{task_id}/stop", None),
        ("get", "/v1/review/stats", None),
        ("get", "/v1/review/agreement?classifier=desk", None),
        ("get", "/v1/classifiers/desk/verified", None),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body, headers=auth(keys["classify"]))
        assert "scope" in error_of(response, 403), (method, path)
    assert client.get("/v1/review/tasks").status_code == 401


def test_a_review_key_cannot_moderate_nor_see_others_answers(served):
    client, _, keys, add = served
    (task_id,) = add(1, required=2)
    me, other, admin = auth(keys["review"]), auth(keys["review2"]), auth(keys["admin"])
    for headers in (me, other):
        assert client.post("/v1/review/next", headers=headers).json()["id"] == task_id
        answer = {"labels": ["EMAIL" if headers is me else "BILLING"]}
        assert (
            client.post(f"/v1/review/tasks/{task_id}/answer", json=answer, headers=headers).status_code == 200
        )
    mine = client.get(f"/v1/review/tasks/{task_id}", headers=me).json()
    assert mine["answers"] is None and mine["queue"] == "moderate"  # a tie
    listed = client.get("/v1/review/tasks", params={"queue": "moderate"}, headers=me).json()["tasks"]
    assert [task["answers"] for task in listed] == [None]
    for path, body in [
        (f"/v1/review/tasks/{task_id}/moderate", {"labels": ["EMAIL"]}),
        (f"/v1/review/tasks/{task_id}/stop", None),
        ("/v1/review/next", {"queue": "moderate"}),
    ]:
        assert error_of(client.post(path, json=body, headers=me), 403)
    assert error_of(client.get("/v1/classifiers/desk/verified", headers=me), 403)
    seen = client.get(f"/v1/review/tasks/{task_id}", headers=admin).json()["answers"]
    assert sorted((a["reviewer"], a["labels"][0]) for a in seen) == sorted(
        [(keys["review"]["access_key_id"], "EMAIL"), (keys["review2"]["access_key_id"], "BILLING")]
    )
    assert client.post("/v1/review/next", json={"queue": "moderate"}, headers=admin).json()["id"] == task_id
    decided = client.post(f"/v1/review/tasks/{task_id}/moderate", json={"labels": ["BILLING"]}, headers=admin)
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert (body["status"], body["final_labels"], body["consolidation"]) == (
        "Completed",
        ["BILLING"],
        "moderated",
    )
    assert body["decided_by"] == keys["admin"]["access_key_id"] and len(body["answers"]) == 2
    agreement = client.get("/v1/review/agreement", params={"classifier": "desk"}, headers=me).json()
    assert agreement["tasks_with_several_answers"] == 1 and agreement["pair_agreement"] == 0.0
    assert agreement["reviewers"][keys["review2"]["access_key_id"]] == {
        "answers": 1,
        "agreed": 1,
        "share": 1.0,
    }
    # each reviewer's estimated accuracy (Dawid-Skene over the tasks with several answers)
    assert agreement["reliability_tasks"] == 1
    assert set(agreement["reliability"]) == {keys[k]["access_key_id"] for k in ("review", "review2")}
    assert all(0 <= r["accuracy"] <= 1 and r["answers"] == 1 for r in agreement["reliability"].values())


def test_stop(served):
    client, _, keys, add = served
    (task_id,) = add(1)
    admin = auth(keys["admin"])
    stopped = client.post(f"/v1/review/tasks/{task_id}/stop", headers=admin)
    assert (stopped.status_code, stopped.json()["status"], stopped.json()["queue"]) == (200, "Stopped", None)
    assert client.post("/v1/review/next", headers=auth(keys["review"])).status_code == 204
    assert error_of(
        client.post(f"/v1/review/tasks/{task_id}/moderate", json={"labels": ["EMAIL"]}, headers=admin), 409
    )


def test_listing_filters_and_pages(served):
    client, _, keys, add = served
    made = set(add(5)) | set(add(2, reason="audit"))
    me = auth(keys["review"])
    seen, after = [], None
    while True:
        page = client.get(
            "/v1/review/tasks", params={"limit": 3} | ({"after": after} if after else {}), headers=me
        )
        assert page.status_code == 200, page.text
        seen += [task["id"] for task in page.json()["tasks"]]
        after = page.json()["next_page"]
        if after is None:
            break
    assert len(seen) == 7 and set(seen) == made
    audit = client.get(
        "/v1/review/tasks", params={"reason": "audit", "status": "InProgress"}, headers=me
    ).json()
    assert len(audit["tasks"]) == 2 and audit["next_page"] is None
    assert client.get("/v1/review/tasks", params={"status": "Completed"}, headers=me).json()["tasks"] == []
    assert "page token" in error_of(client.get("/v1/review/tasks", params={"after": "!!"}, headers=me), 400)
    assert error_of(client.get("/v1/review/tasks", params={"status": "Done"}, headers=me), 422)
    assert error_of(client.get("/v1/review/tasks", params={"limit": 10**20}, headers=me), 422)


def test_export_of_verified_documents(served):
    client, _, keys, add = served
    ids = add(2)
    me, admin = auth(keys["review"]), auth(keys["admin"])
    for label in ("EMAIL", "NETWORK"):
        task = client.post("/v1/review/next", headers=me).json()
        client.post(f"/v1/review/tasks/{task['id']}/answer", json={"labels": [label]}, headers=me)
    assert {task["id"] for task in client.get("/v1/review/tasks", headers=me).json()["tasks"]} == set(ids)
    lines = client.get("/v1/classifiers/desk/verified", headers=admin)
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in lines.text.splitlines()]
    assert sorted(row["labels"][0] for row in rows) == ["EMAIL", "NETWORK"]
    assert {row["origin"] for row in rows} == {"review"}
    as_csv = client.get("/v1/classifiers/desk/verified", headers=admin | {"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert sorted(row[0] for row in csv.reader(io.StringIO(as_csv.text))) == ["EMAIL", "NETWORK"]
    by_query = client.get("/v1/classifiers/desk/verified?format=comprehend-csv", headers=admin)
    assert by_query.text == as_csv.text
    assert error_of(client.get("/v1/classifiers/desk/verified?format=xml", headers=admin), 422)


def test_the_routes_are_documented(served):
    client, _, _, _ = served
    paths = client.get("/openapi.json").json()["paths"]
    for path in [
        "/v1/review/tasks",
        "/v1/review/tasks/{task_id}",
        "/v1/review/next",
        "/v1/review/tasks/{task_id}/answer",
        "/v1/review/tasks/{task_id}/skip",
        "/v1/review/undo",
        "/v1/review/tasks/{task_id}/moderate",
        "/v1/review/tasks/{task_id}/stop",
        "/v1/review/stats",
        "/v1/review/agreement",
        "/v1/classifiers/{name}/verified",
    ]:
        assert path in paths, path
    answer = paths["/v1/review/tasks/{task_id}/answer"]["post"]
    assert answer["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskOut"
    }
    assert Queue.MODERATE.value in json.dumps(paths["/v1/review/next"])
