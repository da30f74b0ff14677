"""GET /v1/endpoints/{name}/monitor through the real app: real classify calls counted, scope,
odd input never a 5xx, and the drift gauges of /metrics."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.services.prediction_log import new_prediction_id
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.repositories import PredictionRepository
from tagloop.storage.tables import utcnow

from .conftest import auth


@pytest.fixture
def served(tmp_path, tickets_csv):
    settings = Settings(data_dir=tmp_path / "data", drift_min_count=5)
    app = create_app(settings, start_workers=False)
    tagloop = app.state.tagloop
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk")["job_id"])
    keys = {scope: tagloop.keys.create(f"{scope}-key", scope)["secret"] for scope in ("classify", "admin")}
    with TestClient(app) as client:
        yield client, tagloop, keys


def test_monitor_counts_real_classify_calls(served):
    client, tagloop, keys = served
    texts = ["my vpn keeps dropping", "the wifi is down again", "cannot reach the network share"]
    answer = client.post("/v1/endpoints/desk/classify", json={"texts": texts}, headers=auth(keys["classify"]))
    assert answer.status_code == 200, answer.text
    tagloop.prediction_log.close()  # written now
    response = client.get("/v1/endpoints/desk/monitor?days=2", headers=auth(keys["classify"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["endpoint"] == "desk" and body["version"] == "v1" and len(body["days"]) == 2
    today = body["days"][-1]
    assert today["day"] == utcnow().date().isoformat() or today["predictions"] == 0  # midnight passed
    assert sum(day["predictions"] for day in body["days"]) == 3
    assert sum(day["labels"].get("NETWORK", 0) for day in body["days"]) == 3
    assert body["reference"]["test_documents"] > 0
    assert "vpn" not in response.text and "wifi" not in response.text  # counts only, never a text
    assert len(client.get("/v1/endpoints/desk/monitor", headers=auth(keys["admin"])).json()["days"]) == 7


@pytest.mark.parametrize(
    "path",
    [
        "/v1/endpoints/desk/monitor?days=0",
        "/v1/endpoints/desk/monitor?days=91",
        "/v1/endpoints/desk/monitor?days=-1",
        "/v1/endpoints/desk/monitor?days=abc",
        "/v1/endpoints/desk/monitor?days=",
        "/v1/endpoints/desk/monitor?days=1e9",
        "/v1/endpoints/desk/monitor?days=99999999999999999999999",
        "/v1/endpoints/desk/monitor?days=2.5",
        "/v1/endpoints/nope/monitor",
        "/v1/endpoints/de%00sk/monitor",
        "/v1/endpoints/" + "x" * 300 + "/monitor",
        "/v1/endpoints/..%2F..%2Fetc/monitor",
        "/v1/endpoints/%F0%9F%98%80/monitor",
    ],
)
def test_odd_input_is_a_clear_4xx(served, path):
    client, _, keys = served
    response = client.get(path, headers=auth(keys["classify"]))
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "error" in response.json()


def test_monitor_needs_a_key(served):
    client, _, _ = served
    assert client.get("/v1/endpoints/desk/monitor").status_code == 401
    assert client.get("/v1/endpoints/desk/monitor", headers=auth("not-a-key")).status_code == 401


def test_drift_gauges_on_metrics(served):
    client, tagloop, keys = served
    rows = [
        {
            "id": new_prediction_id(),
            "endpoint": "desk",
            "version_id": None,
            "text": None,
            "result": "{}",
            "top_label": "BILLING",
            "top_score": 0.31,
            "created_at": utcnow() - timedelta(seconds=i),
        }
        for i in range(20)
    ]
    with tagloop.database.transaction() as session:
        PredictionRepository(session).add_many(rows)
    scraped = ""
    for _ in range(100):  # the first scrape starts a refresh in the background; a later one shows it
        scraped = client.get("/metrics", headers=auth(keys["admin"])).text
        if "tagloop_drift_detected{" in scraped:
            break
        time.sleep(0.1)
    assert 'tagloop_drift_detected{endpoint="desk"} 1.0' in scraped
    assert 'tagloop_monitored_predictions{endpoint="desk"} 20.0' in scraped
    assert 'tagloop_drift_psi{against="training",endpoint="desk",what="labels"}' in scraped
    # the ticker's part records the event once
    tagloop.monitoring.run()
    tagloop.monitoring.run()
    events = client.get("/v1/endpoints/desk/monitor?days=1", headers=auth(keys["classify"])).json()
    assert events["days"][-1]["event"] is True and events["drift"] is True
