"""The /v1 inbox routes through the real app with real keys: adding (only inside allowed data
locations), listing, status, scan, disable, remove; and what an attacker gets: scope checks,
one refusal for every location outside the allowlist, bounded fields, never a 5xx."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagloop.api.server import create_app
from tagloop.settings import Settings

from .conftest import auth, error_of


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("inbox-api")
    allowed, outside = root / "allowed", root / "outside"
    for folder in (allowed / "drop", allowed / "other", outside):
        folder.mkdir(parents=True)
    (allowed / "escape").symlink_to(outside)  # a link inside the allowlist to a folder outside it
    app = create_app(
        Settings(data_dir=root / "data", allowed_data_urls=(str(allowed),), max_body_bytes=20_000),
        start_workers=False,
    )
    tagloop = app.state.tagloop
    keys = {scope: tagloop.keys.create(f"{scope}-key", scope) for scope in ("classify", "review", "admin")}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tagloop, keys, allowed, outside


def test_add_status_scan_disable_remove(served):
    client, _, keys, allowed, _ = served
    admin = auth(keys["admin"])
    created = client.post(
        "/v1/inboxes",
        json={"classifier": "api-desk", "url": f"file://{allowed}/drop/", "deploy": "never"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert (created.json()["url"], created.json()["deploy"]) == (str(allowed / "drop"), "never")
    (allowed / "drop" / "t.csv").write_text("A,x\nB,y\n")
    (allowed / "drop" / "t.csv.ready").touch()
    scanned = client.post("/v1/inboxes/api-desk/scan", headers=admin)
    assert scanned.json() == {"inbox": "api-desk", "seen": [], "claimed": ["t.csv"], "error": None}
    status = client.get("/v1/inboxes/api-desk", params={"state": "claimed"}, headers=admin).json()
    assert [f["name"] for f in status["recent_files"]] == ["t.csv"] and status["files"]["claimed"] == 1
    assert [i["name"] for i in client.get("/v1/inboxes", headers=admin).json()["inboxes"]] == ["api-desk"]
    in_work = client.delete("/v1/inboxes/api-desk", headers=admin)
    assert "in work" in error_of(in_work, 409)
    assert (
        client.patch("/v1/inboxes/api-desk", json={"enabled": False}, headers=admin).json()["enabled"]
        is False
    )
    client.app.state.tagloop.queue.run_until_idle()  # a worker's part: the file fails (too few rows), moves
    removed = client.delete("/v1/inboxes/api-desk", headers=admin)
    assert removed.status_code == 200 and removed.json()["files"]["failed"] == 1
    error_of(client.get("/v1/inboxes/api-desk", headers=admin), 404)


def test_only_admins_may_touch_inboxes(served):
    client, _, keys, allowed, _ = served
    body = {"classifier": "desk", "url": str(allowed / "other")}
    for scope in ("classify", "review"):
        for method, path, payload in (
            ("GET", "/v1/inboxes", None),
            ("POST", "/v1/inboxes", body),
            ("GET", "/v1/inboxes/desk", None),
            ("PATCH", "/v1/inboxes/desk", {"enabled": False}),
            ("POST", "/v1/inboxes/desk/scan", None),
            ("DELETE", "/v1/inboxes/desk", None),
        ):
            error_of(client.request(method, path, json=payload, headers=auth(keys[scope])), 403)
    error_of(client.post("/v1/inboxes", json=body), 401)
    error_of(client.post("/v1/inboxes", json=body, headers={"Authorization": "Bearer tl_nope"}), 401)


def test_a_location_outside_the_allowlist_gets_one_refusal(served):
    client, tagloop, keys, allowed, outside = served
    admin = auth(keys["admin"])
    messages = set()
    for url in (
        str(outside),  # exists, outside
        "/etc",
        "/nonexistent/folder",
        "file:///etc/",
        f"{allowed}/../outside",  # .. out of the allowed folder
        f"{allowed}/escape",  # a link inside to a folder outside
        "s3://some-bucket/inbox/",
        "http://169.254.169.254/latest/meta-data/",
        "memory://inbox",
        "relative/path",
    ):
        response = client.post("/v1/inboxes", json={"classifier": "desk", "url": url}, headers=admin)
        messages.add(error_of(response, 400).replace(repr(url), "URL"))
    assert messages == {"url URL is not in an allowed data location (setting TAGLOOP_ALLOWED_DATA_URLS)"}
    chained = client.post(
        "/v1/inboxes",
        json={"classifier": "desk", "url": f"simplecache::file://{allowed}/other"},
        headers=admin,
    )
    assert "chained protocols" in error_of(chained, 400)
    assert tagloop.inbox.list() == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.dictionaries(
            st.sampled_from(
                ["classifier", "url", "name", "profile", "train", "deploy", "endpoint", "mode", "x"]
            ),
            st.one_of(
                st.text(max_size=20),
                st.integers(),
                st.none(),
                st.booleans(),
                st.lists(st.text(max_size=3), max_size=2),
                st.just("a" * 3000),
                st.just("\u0000"),
                st.just("../../etc"),
            ),
        ),
        st.lists(st.integers(), max_size=2),
        st.text(max_size=10),
    ),
    name=st.one_of(st.text(max_size=12), st.just("a" * 300), st.just("\u0000")),
    limit=st.one_of(st.integers(), st.text(max_size=5)),
)
def test_no_input_gives_a_5xx(served, body, name, limit):
    client, _, keys, _, _ = served
    admin = auth(keys["admin"])
    path = quote(name, safe="") or "%20"
    for response in (
        client.post(
            "/v1/inboxes", content=json.dumps(body), headers=admin | {"content-type": "application/json"}
        ),
        client.get(f"/v1/inboxes/{path}", params={"limit": str(limit), "state": name}, headers=admin),
        client.patch(f"/v1/inboxes/{path}", json=body, headers=admin),
        client.post(f"/v1/inboxes/{path}/scan", headers=admin),
        client.delete(f"/v1/inboxes/{path}", headers=admin),
    ):
        assert 400 <= response.status_code < 500 or response.status_code in (200, 201), (
            response.status_code,
            response.text,
        )
    client.app.state.tagloop.inbox.list()  # the service still answers


def test_a_body_over_the_limit_is_refused_before_it_is_read(served):
    client, _, keys, _, _ = served
    response = client.post(
        "/v1/inboxes",
        content=b'{"classifier": "desk", "url": "' + b"a" * 30_000 + b'"}',
        headers=auth(keys["admin"]) | {"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_metrics_count_the_files_processed_and_failed(served):
    client, tagloop, keys, allowed, _ = served
    admin = auth(keys["admin"])
    folder = allowed / "metrics"
    folder.mkdir()
    tagloop.inbox.add("metrics-desk", str(folder), deploy="never")
    for name in ("a.csv", "b.csv"):
        (folder / name).write_text("A,x\n")  # one label: refused
        (folder / f"{name}.ready").touch()
    tagloop.inbox.scan("metrics-desk")
    tagloop.queue.run_until_idle()
    tagloop.inbox._counts = None  # the figures are read at most every few seconds
    text = client.get("/metrics", headers=admin).text
    assert 'tagloop_inbox_files_failed_total{inbox="metrics-desk"} 2.0' in text
    assert 'tagloop_inbox_files_processed_total{inbox="metrics-desk"} 0.0' in text
    assert 'tagloop_inbox_files{inbox="metrics-desk",state="seen"} 0.0' in text
