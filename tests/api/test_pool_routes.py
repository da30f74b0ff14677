"""The /v1 pool routes through the real app with real keys: adding documents and files (only
from allowed data locations), listing, clearing, filling the review queue, an endpoint's
pool_rate; and what an attacker gets: scope checks, bounded bodies, bad fields, unknown names,
never a 5xx."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

from .conftest import auth, error_of

TEXTS = [
    "printer on floor 2 prints blank pages",
    "cannot open the finance shared mailbox",
    "VPN disconnects during video calls",
    "need access to the HR folder",
    "laptop battery drains in an hour",
]


@pytest.fixture
def served(tmp_path, tickets_csv):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = Settings(
        data_dir=tmp_path / "data",
        allowed_data_urls=(str(inbox),),
        max_text_bytes=1_000,
        max_body_bytes=200_000,
    )
    app = create_app(settings, start_workers=False)
    tagloop = app.state.tagloop
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    created = tagloop.endpoints.create("desk-ep", "desk")
    tagloop.queue.run_now(created["job_id"])
    keys = {scope: tagloop.keys.create(f"{scope}-key", scope) for scope in ("classify", "review", "admin")}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tagloop, keys, inbox


def test_add_list_fill_and_clear(served):
    client, _, keys, _ = served
    admin = auth(keys["admin"])
    documents = [*TEXTS, {"text": "Printer on floor 2 prints  BLANK pages", "labels": ["HARDWARE"]}]
    added = client.post("/v1/classifiers/desk/pool", json={"documents": documents}, headers=admin)
    assert added.status_code == 200, added.text
    report = added.json()
    assert (report["added"], report["duplicates"], report["duplicate_rows"]) == (
        5,
        1,
        [{"line": 6, "of": "line 1"}],
    )
    listed = client.get("/v1/classifiers/desk/pool", params={"limit": 2}, headers=admin).json()
    assert [doc["text"] for doc in listed["documents"]] == TEXTS[:2] and listed["next_after"] is not None
    assert listed["pool"]["waiting"] == 5
    filled = client.post(
        "/v1/classifiers/desk/review/fill", json={"strategy": "entropy", "count": 2}, headers=admin
    )
    assert filled.status_code == 200, filled.text
    assert filled.json()["picked"] == 2
    task = client.post("/v1/review/next", headers=auth(keys["review"])).json()
    assert task["reason"] == "active_learning" and task["priority"] == 1.0
    picked = client.get("/v1/classifiers/desk/pool", params={"picked": "true"}, headers=admin).json()
    assert {doc["task_id"] for doc in picked["documents"]} == {t["task_id"] for t in filled.json()["tasks"]}
    assert client.post("/v1/classifiers/desk/review/fill", headers=admin).json()["picked"] == 3  # defaults
    cleared = client.delete("/v1/classifiers/desk/pool", headers=admin).json()
    assert cleared["removed"] == 0 and cleared["pool"]["picked"] == 5


def test_files_only_from_allowed_locations(served, tmp_path):
    client, _, keys, inbox = served
    admin = auth(keys["admin"])
    (inbox / "pool.csv").write_text("text,label\nmonitor is dark,HARDWARE\n,X\n", encoding="utf-8")
    body = {
        "source": str(inbox / "pool.csv"),
        "format": "csv",
        "text_columns": ["text"],
        "keep_labels": False,
    }
    added = client.post("/v1/classifiers/desk/pool", json=body, headers=admin)
    assert added.status_code == 200, added.text
    assert (added.json()["added"], added.json()["rejected_rows"]) == (
        1,
        [{"line": 3, "reason": "empty text"}],
    )
    outside = tmp_path / "secret.csv"
    outside.write_text("X,secret text\n", encoding="utf-8")
    for source in (
        str(outside),
        "relative.csv",
        f"{inbox}/../secret.csv",
        "http://example.com/x.csv",
        "/etc/passwd",
    ):
        message = error_of(
            client.post("/v1/classifiers/desk/pool", json={"source": source}, headers=admin), 400
        )
        assert "not in an allowed data location" in message
    missing = client.post(
        "/v1/classifiers/desk/pool", json={"source": str(inbox / "missing.csv")}, headers=admin
    )
    assert "no such file" in error_of(missing, 400)  # inside an allowed location: said plainly


def test_an_endpoints_pool_rate_is_a_field_of_the_endpoint(served):
    client, tagloop, keys, _ = served
    admin = auth(keys["admin"])
    before = client.get("/v1/endpoints/desk-ep", headers=admin).json()
    assert before["pool_rate"] == 0.0
    changed = client.patch("/v1/endpoints/desk-ep", json={"pool_rate": 0.05}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert changed.json()["pool_rate"] == 0.05 and changed.json()["version"] == before["version"]
    assert tagloop.endpoints.show("desk-ep")["status"] == "IN_SERVICE"  # no deployment for a rate
    for rate in (1.5, -0.1, "high", None):
        response = client.patch("/v1/endpoints/desk-ep", json={"pool_rate": rate}, headers=admin)
        if rate is None:  # nothing to change: the endpoint as it is (the newest version)
            assert response.status_code == 200
        else:
            assert response.status_code in (400, 422), response.text
    assert tagloop.endpoints.show("desk-ep")["pool_rate"] == 0.05
    response = client.patch("/v1/endpoints/desk-ep", content=b'{"pool_rate": NaN}', headers=admin)
    assert response.status_code in (400, 422)
    assert error_of(client.patch("/v1/endpoints/nowhere", json={"pool_rate": 0.1}, headers=admin), 404)


def test_an_attacker_gets_clear_errors_and_never_a_5xx(served):
    client, tagloop, keys, _ = served
    admin = auth(keys["admin"])
    for key in ("classify", "review"):
        for method, path in (
            ("post", "/v1/classifiers/desk/pool"),
            ("get", "/v1/classifiers/desk/pool"),
            ("delete", "/v1/classifiers/desk/pool"),
            ("post", "/v1/classifiers/desk/review/fill"),
        ):
            response = client.request(method, path, json={"documents": ["x"]}, headers=auth(keys[key]))
            error_of(response, 403)
    error_of(client.get("/v1/classifiers/desk/pool"), 401)
    bad_bodies = [
        {},
        {"documents": ["a"], "source": "/x"},
        {"documents": ["a"] * 1_001},
        {"documents": []},
        {"documents": [5]},
        {"documents": [{"text": "a", "labels": "HARDWARE"}]},
        {"documents": [{"text": "a", "labels": [""]}]},
        {"documents": [{"text": "a", "labels": ["x"] * 101}]},
        {"documents": [{"text": "a", "extra": 1}]},
        {"documents": ["a"], "format": "csv"},
        {"documents": ["a"], "keep_labels": "yes please"},
        {"source": "x" * 3_000},
        {"source": "/x", "format": "xml"},
        {"source": "/x", "text_columns": ["c"] * 21},
        {"documents": ["a"], "unknown": True},
        [],
        "text",
        None,
    ]
    for body in bad_bodies:
        response = client.post("/v1/classifiers/desk/pool", json=body, headers=admin)
        assert response.status_code in (400, 422), (body, response.status_code, response.text)
    for raw in (b"{", b"\xff\xfe", b'{"documents": ["\\u0000"]}', b"[" * 10_000):
        response = client.post(
            "/v1/classifiers/desk/pool", content=raw, headers=admin | {"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (raw[:20], response.status_code, response.text)
    # rows the service refuses are reported by position, the others added
    report = client.post(
        "/v1/classifiers/desk/pool",
        json={"documents": ["ok text", "x" * 1_001, "nul \u0000", "   "]},
        headers=admin,
    ).json()
    assert report["added"] == 1 and [row["line"] for row in report["rejected_rows"]] == [2, 3, 4]
    assert "TAGLOOP_MAX_TEXT_BYTES" in report["rejected_rows"][0]["reason"]
    error_of(client.post("/v1/classifiers/desk/pool", json={"documents": ["\u0000"]}, headers=admin), 400)
    huge = json.dumps({"documents": ["y" * 900] * 300})
    response = client.post(
        "/v1/classifiers/desk/pool", content=huge, headers=admin | {"content-type": "application/json"}
    )
    assert response.status_code == 413
    # unknown and malformed names
    error_of(client.post("/v1/classifiers/nobody/pool", json={"documents": ["a"]}, headers=admin), 404)
    error_of(client.get("/v1/classifiers/nobody/pool", headers=admin), 404)
    error_of(client.post("/v1/classifiers/nobody/review/fill", headers=admin), 404)
    for name in ("-bad", "a" * 64, "a%00b", "a b"):
        assert client.get(f"/v1/classifiers/{name}/pool", headers=admin).status_code in (404, 422)
    for params in (
        {"limit": 0},
        {"limit": 1_001},
        {"after": -1},
        {"after": "x"},
        {"picked": "maybe"},
        {"after": 2**70},
    ):
        assert client.get("/v1/classifiers/desk/pool", params=params, headers=admin).status_code in (400, 422)
    for body in (
        {"strategy": "../etc"},
        {"strategy": "guess"},
        {"strategy": "x" * 65},
        {"count": 0},
        {"count": 10_001},
        {"count": "many"},
        {"required": 4},
        {"required": 0},
        {"seed": 1},
    ):
        response = client.post("/v1/classifiers/desk/review/fill", json=body, headers=admin)
        assert response.status_code in (400, 422), (body, response.text)
    # nothing of all that reached the pool or the queue
    assert tagloop.pool.count("desk")["documents"] == 1
    assert tagloop.review.stats(classifier="desk").pending == 0
