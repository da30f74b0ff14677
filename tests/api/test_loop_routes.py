"""/v1 routes of the learning loop (loop settings, iterations, promotion, rollback, events),
their scopes and bad input; and promotion under live classify traffic through a real server."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

from .conftest import auth


@pytest.fixture
def served(tmp_path, tickets, write_csv):
    """The tickets classifier trained twice; endpoint ``desk`` follows it, ``pinned`` is on v1."""
    settings = Settings(data_dir=tmp_path / "data", endpoint_refresh_seconds=0.2, loop_tick_seconds=0)
    app = create_app(settings, start_workers=False)
    tagloop = app.state.tagloop
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    for _ in range(2):
        tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", "v1", follow=True)["job_id"])
    tagloop.queue.run_now(tagloop.endpoints.create("pinned", "desk", "v1")["job_id"])
    keys = {scope: tagloop.keys.create(f"{scope}-key", scope)["secret"] for scope in ("classify", "admin")}
    return app, tagloop, keys


def test_loop_iterations_promotion_and_events(served):
    app, tagloop, keys = served
    admin = auth(keys["admin"])
    with TestClient(app) as client:
        loop = client.get("/v1/classifiers/desk/loop", headers=admin).json()
        assert loop["champion"] == "v1" and loop["following_endpoints"] == ["desk"]
        changed = client.patch("/v1/classifiers/desk/loop", json={"min_gain": 0.5}, headers=admin)
        assert changed.status_code == 200 and changed.json()["settings"]["min_gain"] == 0.5

        started = client.post("/v1/classifiers/desk/iterations", headers=admin)
        assert started.status_code == 201 and started.json()["status"] == "TRAINING"
        name = started.json()["iteration"]
        assert client.post("/v1/classifiers/desk/iterations", headers=admin).status_code == 409
        tagloop.queue.run_until_idle()  # the server's workers would run it
        done = client.get(f"/v1/classifiers/desk/iterations/{name}", headers=admin).json()
        assert done["status"] == "COMPLETED" and done["decision"] == "kept"  # min gain 0.5
        assert [
            i["iteration"] for i in client.get("/v1/classifiers/desk/iterations", headers=admin).json()
        ] == [name]
        stopped = client.post(f"/v1/classifiers/desk/iterations/{name}/stop", headers=admin)
        assert stopped.json()["status"] == "COMPLETED"  # an ended iteration stays as it ended

        promoted = client.post(f"/v1/classifiers/desk/versions/{done['challenger']}/promote", headers=admin)
        assert promoted.status_code == 200 and promoted.json()["endpoints"] == ["desk"]
        assert client.get("/v1/endpoints/desk", headers=admin).json()["version"] == done["challenger"]
        assert client.get("/v1/endpoints/pinned", headers=admin).json()["version"] == "v1"
        back = client.post("/v1/classifiers/desk/rollback", headers=admin)
        assert back.status_code == 200 and back.json()["champion"] == "v1"
        events = client.get("/v1/events", params={"kind": "version.promoted"}, headers=admin).json()
        assert [e["payload"]["to"] for e in events] == ["v1", done["challenger"], "v1"]  # first: create
        later = client.get("/v1/events", params={"after": events[1]["id"]}, headers=admin).json()
        # each promotion moved the following endpoint: told of as a deploy (the pinned one stays)
        assert [(e["kind"], e["payload"].get("endpoint")) for e in later] == [
            ("endpoint.deployed", "desk"),
            ("version.promoted", None),
            ("endpoint.deployed", "desk"),
        ]
        assert later[1]["id"] == events[2]["id"] and later[2]["payload"]["version"] == "v1"
        pinned = client.patch("/v1/endpoints/desk", json={"follows": False}, headers=admin).json()
        assert pinned["follows"] is False


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/classifiers/desk/loop", None),
        ("patch", "/v1/classifiers/desk/loop", {"min_gain": 0.1}),
        ("post", "/v1/classifiers/desk/iterations", None),
        ("get", "/v1/classifiers/desk/iterations", None),
        ("post", "/v1/classifiers/desk/versions/v2/promote", None),
        ("post", "/v1/classifiers/desk/rollback", None),
        ("get", "/v1/events", None),
    ],
)
def test_loop_routes_need_the_admin_scope(served, method, path, body):
    app, _, keys = served
    with TestClient(app) as client:
        kwargs = {"json": body} if body is not None else {}
        assert client.request(method, path, headers=auth(keys["classify"]), **kwargs).status_code == 403
        assert client.request(method, path, **kwargs).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("patch", "/v1/classifiers/desk/loop", {"min_gain": 2}, 400),
        ("patch", "/v1/classifiers/desk/loop", {"metric": "Nope"}, 400),
        ("patch", "/v1/classifiers/desk/loop", {"every_seconds": 1}, 400),
        ("patch", "/v1/classifiers/desk/loop", {"colour": "red"}, 400),
        ("patch", "/v1/classifiers/desk/loop", {"min_gain": "x" * 10_000}, 400),
        ("patch", "/v1/classifiers/desk/loop", [1, 2], 400),
        ("get", "/v1/classifiers/nobody/loop", None, 404),
        ("get", "/v1/classifiers/desk/iterations/20990101T000000Z", None, 404),
        ("get", "/v1/classifiers/desk/iterations?limit=0", None, 400),
        ("get", "/v1/classifiers/desk/iterations?after=a%00b", None, 400),
        ("post", "/v1/classifiers/desk/versions/v9/promote", None, 404),
        ("post", "/v1/classifiers/desk/versions/a%00/promote", None, 400),
        ("post", "/v1/classifiers/desk/rollback", {"to": "v9"}, 404),
        ("post", "/v1/classifiers/desk/rollback", None, 400),  # no earlier champion
        ("get", "/v1/events?after=-1", None, 400),
        ("get", "/v1/events?kind=" + "k" * 100, None, 400),
        ("post", "/v1/endpoints", {"name": "x", "classifier": "desk", "version": "v2", "follows": True}, 400),
    ],
)
def test_bad_loop_input_gets_a_clear_4xx(served, method, path, body, status):
    app, _, keys = served
    with TestClient(app) as client:
        kwargs = {"json": body} if body is not None else {}
        answer = client.request(method, path, headers=auth(keys["admin"]), **kwargs)
        # 422: refused by the request's schema, 400: by the service (both InvalidRequestException)
        assert answer.status_code == status or (status == 400 and answer.status_code == 422), answer.text
        assert "error" in answer.json()


def test_promotion_under_live_classify_traffic_fails_no_request(served, serve_in_thread):
    """Threads classify through a real server while versions are promoted back and forth:
    every answer comes from the old or the new version, and none fails."""
    app, tagloop, keys = served
    headers = auth(keys["classify"])
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def classify(port: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while not stop.is_set():
                response = client.post(
                    "/v1/endpoints/desk/classify", json={"text": "my laptop will not boot"}, headers=headers
                )
                version = response.json().get("model_version") if response.status_code == 200 else None
                with lock:
                    answers.append((response.status_code, version))

    with serve_in_thread(app) as port:
        threads = [threading.Thread(target=classify, args=(port,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for target in ("v2", "v1", "v2", "v1", "v2"):
                before = len(answers)
                tagloop.loops.promote("desk", target)
                deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
                while time.monotonic() < deadline:  # until this server answered from the new champion
                    with lock:
                        if any(v == target for _, v in answers[before:]):
                            break
                    stop.wait(0.05)
                else:
                    pytest.fail(f"the endpoint never served {target} after its promotion")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    assert answers and all(status == 200 for status, _ in answers)
    assert {version for _, version in answers} == {"v1", "v2"}
    assert tagloop.endpoints.show("pinned")["version"] == "v1"
