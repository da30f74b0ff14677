"""The /v1 notification routes through the real app with real keys, and what an attacker gets:
scope checks, webhook URLs outside TAGLOOP_NOTIFY_ALLOWED_TARGETS (loopback ports, the cloud
metadata address, user-info tricks, other schemes), apprise refused, secrets answered once,
bad bodies answered 4xx (never 5xx); a test message reaching a real receiver, and /metrics."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.domain.notifications import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tagloop.settings import Settings

from .conftest import auth, error_of


@pytest.fixture(scope="module")
def receiver(make_receiver):
    made = make_receiver()
    yield made
    made.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, receiver):
    """One app for the module (building one costs a second or two); tests leave no channel."""
    origin = f"http://127.0.0.1:{receiver.port}"
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("notify-routes") / "data",
        notify_allowed_targets=(f"{origin}/hook", "@example.com"),
        max_body_bytes=100_000,
    )
    app = create_app(settings, start_workers=False)
    tagloop = app.state.tagloop
    keys = {scope: tagloop.keys.create(f"{scope}-key", scope) for scope in ("classify", "review", "admin")}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tagloop, keys, origin


@pytest.fixture
def served(server, receiver):
    receiver.requests.clear()
    receiver.answers = []
    yield server
    tagloop = server[1]
    for channel in tagloop.notify.list():
        tagloop.notify.remove(channel["name"])


@pytest.fixture
def webhook_receiver(receiver):
    return receiver


def test_create_test_list_and_remove_a_webhook(served, webhook_receiver):
    client, _, keys, origin = served
    admin = auth(keys["admin"])
    created = client.post(
        "/v1/channels",
        json={
            "name": "team",
            "kind": "webhook",
            "target": f"{origin}/hook?token=t0k3n",
            "events": ["training.*"],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert len(secret) >= 32 and created.json()["target"] == f"{origin}/hook?…"
    listed = client.get("/v1/channels", headers=admin)
    assert listed.status_code == 200 and secret not in listed.text and "t0k3n" not in listed.text
    assert [c["name"] for c in listed.json()["channels"]] == ["team"]
    tested = client.post("/v1/channels/team/test", headers=admin)
    assert tested.status_code == 200 and tested.json()["status"] == "delivered", tested.text
    [request] = webhook_receiver.requests
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert verify(
        secret, headers[TIMESTAMP_HEADER.lower()], request["body"], headers[SIGNATURE_HEADER.lower()]
    )
    assert request["path"] == "/hook?token=t0k3n"
    log = client.get("/v1/deliveries", params={"channel": "team"}, headers=admin).json()["deliveries"]
    assert [(d["kind"], d["status"]) for d in log] == [("notify.test", "delivered")]
    paused = client.patch("/v1/channels/team", json={"enabled": False}, headers=admin)
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    assert client.post("/v1/channels/team/retry", headers=admin).json() == {"channel": "team", "requeued": 0}
    assert client.delete("/v1/channels/team", headers=admin).json()["removed"] is True
    error_of(client.get("/v1/channels/team", headers=admin), 404)
    error_of(client.post("/v1/channels/team/test", headers=admin), 404)


def test_scopes(served):
    client, _, keys, origin = served
    body = {"name": "x", "kind": "webhook", "target": f"{origin}/hook"}
    for headers, status in ((None, 401), (auth(keys["classify"]), 403), (auth(keys["review"]), 403)):
        assert client.get("/v1/channels", headers=headers).status_code == status
        assert client.post("/v1/channels", json=body, headers=headers).status_code == status
        assert client.get("/v1/deliveries", headers=headers).status_code == status
        assert client.post("/v1/channels/x/test", headers=headers).status_code == status
    bogus = {"Authorization": "Bearer tl_nobody.nothing"}
    assert client.post("/v1/channels", json=body, headers=bogus).status_code == 401


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:1/hook",  # another local service
        "http://169.254.169.254/latest/meta-data/iam/",  # the cloud metadata address
        "http://localhost:{port}/hook",  # the same port by another name
        "http://[::1]:{port}/hook",
        "http://127.0.0.1:{port}/hooks",  # not at a folder boundary
        "http://127.0.0.1:{port}/hook/../v1/keys",
        "http://127.0.0.1:{port}/hook/%2e%2e/v1/keys",
        "https://127.0.0.1:{port}/hook",  # another scheme, another origin
        "http://evil.example.net/hook?next=http://127.0.0.1:{port}/hook",
    ],
)
def test_webhooks_outside_the_allowlist_are_refused(served, webhook_receiver, target):
    client, tagloop, keys, _ = served
    target = target.format(port=webhook_receiver.port)
    response = client.post(
        "/v1/channels",
        json={"name": "evil", "kind": "webhook", "target": target},
        headers=auth(keys["admin"]),
    )
    assert "TAGLOOP_NOTIFY_ALLOWED_TARGETS" in error_of(response, 400)
    assert tagloop.notify.list() == [] and webhook_receiver.requests == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"name": "e", "kind": "webhook", "target": "http://127.0.0.1:{port}@evil.example.net/hook"},
            "user name",
        ),
        ({"name": "e", "kind": "webhook", "target": "file:///etc/passwd"}, "http:// or https://"),
        ({"name": "e", "kind": "webhook", "target": "gopher://127.0.0.1:{port}/hook"}, "http:// or https://"),
        (
            {"name": "e", "kind": "email", "target": "ops@example.com, victim@elsewhere.org"},
            "ALLOWED_TARGETS",
        ),
        ({"name": "e", "kind": "email", "target": "ops@example.com\r\nBcc: x@evil.net"}, "plain e-mail"),
        (
            {
                "name": "e",
                "kind": "webhook",
                "target": "http://127.0.0.1:{port}/hook",
                "events": ["pool.fed"],
            },
            "unknown",
        ),
        (
            {
                "name": "e",
                "kind": "webhook",
                "target": "http://127.0.0.1:{port}/hook",
                "classifier": "nobody",
            },
            "nobody",
        ),
    ],
)
def test_bad_targets_are_refused_with_a_reason(served, webhook_receiver, body, reason):
    client, _, keys, _ = served
    body = {
        key: value.format(port=webhook_receiver.port) if isinstance(value, str) else value
        for key, value in body.items()
    }
    response = client.post("/v1/channels", json=body, headers=auth(keys["admin"]))
    assert 400 <= response.status_code < 500, response.text
    assert reason in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a", "kind": "apprise", "target": "json://127.0.0.1/hook"},  # CLI only
        {"name": "a", "kind": "webhook"},
        {"name": "a" * 64, "kind": "webhook", "target": "http://127.0.0.1/hook"},
        {"name": "bad name", "kind": "webhook", "target": "http://127.0.0.1/hook"},
        {"name": "a", "kind": "webhook", "target": "http://127.0.0.1/" + "a" * 3000},
        {"name": "a", "kind": "webhook", "target": "http://127.0.0.1/hook", "secret": "short"},
        {"name": "a", "kind": "webhook", "target": "http://127.0.0.1/hook", "events": ["training.*"] * 50},
        {"name": "a", "kind": "webhook", "target": "http://127.0.0.1/hook", "extra": 1},
        {"name": "a", "kind": "webhook", "target": ["http://127.0.0.1/hook"]},
        [],
        "webhook",
    ],
)
def test_malformed_bodies_are_4xx(served, body):
    client, tagloop, keys, _ = served
    response = client.post("/v1/channels", json=body, headers=auth(keys["admin"]))
    assert 400 <= response.status_code < 500, response.text
    assert tagloop.notify.list() == []


def test_odd_requests_never_5xx(served):
    client, _, keys, _ = served
    admin = auth(keys["admin"])
    for method, path, params in (
        ("GET", "/v1/deliveries", {"status": "exploded"}),
        ("GET", "/v1/deliveries", {"limit": 0}),
        ("GET", "/v1/deliveries", {"before": -1}),
        ("GET", "/v1/deliveries", {"channel": "../../etc"}),
        ("GET", "/v1/deliveries", {"channel": "nobody"}),
        ("GET", "/v1/channels/" + "x" * 100, {}),
        ("PATCH", "/v1/channels/nobody", {}),
        ("DELETE", "/v1/channels/nobody", {}),
        ("POST", "/v1/channels/nobody/retry", {}),
    ):
        response = client.request(method, path, params=params, headers=admin, json={"enabled": True})
        assert 400 <= response.status_code < 500, (path, params, response.text)
    raw = client.post(
        "/v1/channels", content=b"{not json", headers=admin | {"content-type": "application/json"}
    )
    assert 400 <= raw.status_code < 500
    huge = client.post(
        "/v1/channels", content=json.dumps({"name": "a", "target": "x" * 200_000}).encode(), headers=admin
    )
    assert huge.status_code == 413


def test_without_an_allowlist_the_network_adds_no_channel_but_the_cli_may(tmp_path, webhook_receiver):
    app = create_app(Settings(data_dir=tmp_path / "data"), start_workers=False)
    tagloop = app.state.tagloop
    admin = auth(tagloop.keys.create("admin-key", "admin"))
    with TestClient(app, raise_server_exceptions=False) as client:
        for body in (
            {"name": "w", "kind": "webhook", "target": webhook_receiver.url},
            {"name": "m", "kind": "email", "target": "ops@example.com"},
        ):
            error_of(client.post("/v1/channels", json=body, headers=admin), 400)
        tagloop.notify.add("w", "webhook", webhook_receiver.url)  # the machine's own user
        assert client.get("/v1/channels/w", headers=admin).json()["target"] == webhook_receiver.url


def test_metrics_count_deliveries_by_status(served, webhook_receiver):
    client, tagloop, keys, origin = served
    admin = auth(keys["admin"])
    client.post(
        "/v1/channels", json={"name": "team", "kind": "webhook", "target": f"{origin}/hook"}, headers=admin
    )
    client.post("/v1/channels/team/test", headers=admin)
    webhook_receiver.answers = [500]
    client.post("/v1/channels/team/test", headers=admin)
    tagloop.notify.refresh_counts()
    metrics = client.get("/metrics", headers=admin).text
    assert 'tagloop_notification_deliveries{status="delivered"} 1.0' in metrics
    assert 'tagloop_notification_deliveries{status="failed"} 1.0' in metrics
