"""End-user feedback (POST /v1/feedback): on a logged prediction, on one text, on several;
unknown ids, logging off, limits and scopes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tagloop.api.server import create_app
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.tables import ReviewTaskRow

URL = "/v1/feedback"


@pytest.fixture
def make_served(tmp_path, tickets, write_csv):
    made = []

    def make(**overrides):
        settings = Settings(data_dir=tmp_path / f"data{len(made)}", max_classify_documents=5, **overrides)
        app = create_app(settings, start_workers=False)
        tagloop = app.state.tagloop
        data = write_csv([list(row) for row in tickets], "tickets.csv")
        tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
        tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", "v1")["job_id"])
        keys = {
            scope: tagloop.keys.create(f"{scope}-key", scope) for scope in ("classify", "review", "admin")
        }
        client = TestClient(app, base_url="http://127.0.0.1")
        client.__enter__()
        made.append(client)
        return (
            client,
            tagloop,
            {scope: {"Authorization": f"Bearer {key['secret']}"} for scope, key in keys.items()},
        )

    yield make
    for client in made:
        client.__exit__(None, None, None)


@pytest.fixture
def served(make_served):
    return make_served()


def task(tagloop, task_id: str) -> ReviewTaskRow:
    with tagloop.database.reading() as session:
        return session.scalars(select(ReviewTaskRow).where(ReviewTaskRow.id == task_id)).one()


def test_feedback_on_a_prediction(served):
    client, tagloop, keys = served
    answer = client.post(
        "/v1/endpoints/desk/classify", json={"text": "my vpn keeps dropping"}, headers=keys["classify"]
    ).json()
    sent = client.post(
        URL,
        json={
            "prediction_id": answer["prediction_id"],
            "correct": False,
            "labels": ["HARDWARE"],
            "comment": "no",
        },
        headers=keys["classify"],
    )  # straight after the answer: the log may not have written it yet, and is waited for
    assert sent.status_code == 201, sent.text
    body = sent.json()
    (task_id,) = body["task_ids"]
    assert body["prediction_id"] == answer["prediction_id"] and body["classifier"] == "desk"
    stored = task(tagloop, task_id)
    assert (stored.queue, stored.reason, stored.text) == ("moderate", "feedback", "my vpn keeps dropping")
    assert stored.prediction["labels"] == [c["name"] for c in answer["classes"]]
    assert stored.feedback == {
        "correct": False,
        "labels": ["HARDWARE"],
        "comment": "no",
        "source": "prediction",
    }
    assert stored.prediction_id == answer["prediction_id"] and stored.endpoint == "desk"
    right = client.post(
        URL, json={"prediction_id": answer["prediction_id"], "correct": True}, headers=keys["classify"]
    )
    assert right.status_code == 201 and task(tagloop, right.json()["task_ids"][0]).feedback["correct"] is True


def test_unknown_ids_and_bad_verdicts_are_refused(served):
    client, tagloop, keys = served
    unknown = "0" * 32
    missing = client.post(URL, json={"prediction_id": unknown, "correct": False}, headers=keys["classify"])
    assert missing.status_code == 404 and unknown in missing.json()["error"]["message"]
    answer = client.post("/v1/endpoints/desk/classify", json={"text": "vpn"}, headers=keys["classify"]).json()
    pid = answer["prediction_id"]
    for body, status, words in [
        ({"prediction_id": pid, "correct": False, "labels": ["NOPE"]}, 400, "NOPE"),
        ({"prediction_id": pid, "correct": True, "labels": ["NETWORK"]}, 400, "labels"),
        ({"prediction_id": pid}, 422, "correct"),
        ({"prediction_id": pid, "correct": False, "sentence": "x"}, 422, "sentence"),
        ({"prediction_id": "../../etc", "correct": False}, 422, "prediction_id"),
        ({"correct": False}, 422, "prediction_id"),
        ({"classifier": "desk"}, 422, "sentence"),
        ({"classifier": "desk", "sentence": "a", "sentences": ["b"]}, 422, "sentence"),
        ({"classifier": "nope", "sentence": "vpn"}, 404, "nope"),
        ({"classifier": "desk", "sentence": "  "}, 400, "sentences[0]"),
        ({"classifier": "desk", "sentences": ["vpn"] * 6}, 413, "TAGLOOP_MAX_CLASSIFY_DOCUMENTS"),
        ({"classifier": "desk", "sentence": "x" * 100_001}, 413, "TAGLOOP_MAX_CLASSIFY_BYTES"),
        ({"classifier": "desk", "sentence": "vpn", "comment": "c" * 5_001}, 422, "comment"),
        ({"classifier": "desk", "sentence": "vpn", "extra": 1}, 422, "extra"),
    ]:
        response = client.post(URL, json=body, headers=keys["classify"])
        assert response.status_code == status, (body, response.text)
        assert words in response.text, (body, response.text)
    with tagloop.database.reading() as session:
        assert session.scalars(select(ReviewTaskRow)).all() == []  # nothing accepted silently


def test_feedback_on_texts(served):
    client, tagloop, keys = served
    one = client.post(
        URL, json={"classifier": "desk", "sentence": "the printer is jammed"}, headers=keys["classify"]
    )
    assert one.status_code == 201, one.text
    assert one.json()["version"] == "v1"
    stored = task(tagloop, one.json()["task_ids"][0])
    assert (
        stored.text == "the printer is jammed" and stored.queue == "moderate" and stored.reason == "feedback"
    )
    assert stored.prediction["labels"] and stored.feedback["source"] == "text" and stored.endpoint == "desk"
    several = client.post(
        URL,
        json={"classifier": "desk", "sentences": ["vpn drops", "refund please"]},
        headers=keys["classify"],
    )
    assert several.status_code == 201 and len(several.json()["task_ids"]) == 2
    assert [task(tagloop, t).text for t in several.json()["task_ids"]] == ["vpn drops", "refund please"]


def test_scopes(served):
    client, _, keys = served
    body = {"classifier": "desk", "sentence": "vpn"}
    assert client.post(URL, json=body).status_code == 401
    assert client.post(URL, json=body, headers=keys["review"]).status_code == 403  # classify scope
    assert client.post(URL, json=body, headers=keys["admin"]).status_code == 201
    # a classify key sends feedback but cannot change routing
    assert (
        client.put("/v1/endpoints/desk/routing", json={"audit": 1}, headers=keys["classify"]).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"log_predictions": False}, "TAGLOOP_LOG_PREDICTIONS"),
        ({"log_prediction_text": False}, "TAGLOOP_LOG_PREDICTION_TEXT"),
    ],
)
def test_feedback_needs_the_logged_prediction(make_served, setting, words):
    client, _, keys = make_served(**setting)
    answer = client.post("/v1/endpoints/desk/classify", json={"text": "vpn"}, headers=keys["classify"]).json()
    pid = answer["prediction_id"] or "0" * 32
    response = client.post(URL, json={"prediction_id": pid, "correct": False}, headers=keys["classify"])
    assert response.status_code == 400 and words in response.text
    texts = client.post(URL, json={"classifier": "desk", "sentence": "vpn"}, headers=keys["classify"])
    assert texts.status_code == 201  # the text form works whatever the log keeps
