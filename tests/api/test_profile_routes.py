"""The /v1 import-profile routes through the real app with real keys: create, replace, show,
list, delete, try; and what an attacker gets: admin scope only, bounded bodies, databases and
files only where the operator allowed them (no SSRF, no reading the server's files, one message
whether a path exists or not), archive bombs and escaping paths refused, never a 5xx."""

from __future__ import annotations

import zipfile

import pytest
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.settings import Settings

from .conftest import auth, error_of

RECIPE = {
    "query": "SELECT type, summary, description FROM issue",
    "filters": [{"column": "type", "values": ["Bug"]}],
    "text_columns": ["summary", "description"],
    "label_from": "member",
}
ALLOWED_DB = "postgresql://reader@db.internal:5432/issues"


@pytest.fixture
def served(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = Settings(
        data_dir=tmp_path / "data",
        allowed_data_urls=(str(inbox),),
        allowed_database_urls=(ALLOWED_DB,),
        max_body_bytes=100_000,
    )
    app = create_app(settings, start_workers=False)
    tagloop = app.state.tagloop
    keys = {scope: tagloop.keys.create(f"{scope}-key", scope) for scope in ("classify", "review", "admin")}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tagloop, keys, inbox


def test_create_replace_show_list_try_delete(served, issue_archive):
    client, _, keys, inbox = served
    admin = auth(keys["admin"])
    url = "/v1/classifiers/issues/profiles/bugs"
    created = client.put(url, json=RECIPE, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["filters"] == [{"column": "type", "values": ["Bug"], "exclude": False}]
    assert client.put(url, json=RECIPE | {"joiner": "\n"}, headers=admin).status_code == 200
    assert client.get(url, headers=admin).json()["spec"]["joiner"] == "\n"
    listed = client.get("/v1/classifiers/issues/profiles", headers=admin).json()
    assert [p["name"] for p in listed["profiles"]] == ["bugs"]
    archive = issue_archive(rows=10)
    placed = inbox / "issues.zip"
    placed.write_bytes(archive.read_bytes())
    tried = client.post(f"{url}/try", json={"source": str(placed), "rows": 2}, headers=admin)
    assert tried.status_code == 200, tried.text
    found = tried.json()
    assert found["label_counts"] == {"HADOOP": 5, "KAFKA": 5, "SPARK": 5} and len(found["sample"]) == 2
    assert client.delete(url, headers=admin).status_code == 204
    error_of(client.get(url, headers=admin), 404)
    error_of(client.delete(url, headers=admin), 404)


def test_only_admin_keys_and_failed_auth_costs_nothing(served):
    client, _, keys, _ = served
    url = "/v1/classifiers/issues/profiles/bugs"
    for scope in ("classify", "review"):
        error_of(client.put(url, json=RECIPE, headers=auth(keys[scope])), 403)
        error_of(client.get("/v1/classifiers/issues/profiles", headers=auth(keys[scope])), 403)
        error_of(client.post(f"{url}/try", json={"source": "/etc/passwd"}, headers=auth(keys[scope])), 403)
    error_of(client.put(url, json=RECIPE), 401)
    error_of(client.put(url, json=RECIPE, headers={"Authorization": "Bearer nope"}), 401)
    error_of(client.get("/v1/classifiers/issues/profiles", headers=auth(keys["admin"])), 404)


MALFORMED = (
    {"colour": "red"},
    {"query": "x" * 20_001},
    {"text_columns": ["a"] * 21},
    {"format": "exe"},
    {"label_from": "moon"},
    {"filters": [{"column": "a", "values": []}]},
    {"label_map": {"a": "b" * 300}},
    {"database_url": "x" * 3000, "query": "SELECT 1"},
    [],
    "text",
)
SPEC_RULES = (
    ({"query": "DELETE FROM issue"}, "query must read"),
    ({"query": "SELECT 1; DROP TABLE issue", "format": "sqlite"}, "one statement"),
    ({"format": "sqlite"}, "needs a query"),
    ({"label_column": "x", "label_from": "member"}, "either label_column or label_from"),
)
REFUSED_DATABASES = (
    "postgresql://reader@db.internal:5433/issues",  # another port
    "postgresql://reader@169.254.169.254:5432/issues",  # another host (cloud metadata)
    "postgresql://admin@db.internal:5432/issues",  # another user
    "postgresql://reader@db.internal:5432/other",  # another database
    "postgresql://reader@db.internal:5432/issues?host=10.0.0.1",  # host by parameter
    "postgresql://reader@db.internal:5432/issues?sslrootcert=/etc/shadow",  # a file by parameter
    "mysql://reader@db.internal:5432/issues",  # another backend
    "sqlite:////etc/passwd",  # a server file
    "sqlite:///relative.db",
    "sqlite://",  # in memory
)


def test_bad_specs_are_refused_naming_the_field(served):
    client, _, keys, _ = served
    admin = auth(keys["admin"])
    url = "/v1/classifiers/issues/profiles/p"
    for body in MALFORMED:
        error_of(client.put(url, json=body, headers=admin), 422)
    for body, reason in SPEC_RULES:
        assert reason in error_of(client.put(url, json=body, headers=admin), 400)


def test_databases_outside_the_allowlist_are_refused(served):
    client, _, keys, _ = served
    for url in REFUSED_DATABASES:
        body = {"database_url": url, "query": "SELECT summary AS text, project AS label FROM issue"}
        response = client.put("/v1/classifiers/issues/profiles/db", json=body, headers=auth(keys["admin"]))
        message = error_of(response, 400)
        assert "is not an allowed database (setting TAGLOOP_ALLOWED_DATABASE_URLS)" in message, url
    listed = client.get("/v1/classifiers/issues/profiles", headers=auth(keys["admin"]))
    error_of(listed, 404)  # nothing saved, not even the classifier


def test_allowed_databases_are_saved_with_their_password_hidden(served):
    client, _, keys, inbox = served
    admin = auth(keys["admin"])
    body = {"database_url": "postgresql://reader:pw123@DB.internal:5432/issues", "query": "SELECT 1 AS text"}
    saved = client.put("/v1/classifiers/issues/profiles/db", json=body, headers=admin)
    assert saved.status_code == 201, saved.text
    assert "pw123" not in saved.text and "***" in saved.json()["spec"]["database_url"]
    sqlite_body = {"database_url": f"sqlite:///{inbox}/issues.db", "query": "SELECT 1 AS text"}
    assert (
        client.put("/v1/classifiers/issues/profiles/lite", json=sqlite_body, headers=admin).status_code == 201
    )


def test_try_reads_only_allowed_files_with_one_message(served, tmp_path):
    client, _, keys, inbox = served
    admin = auth(keys["admin"])
    client.put(
        "/v1/classifiers/desk/profiles/lines", json={"label_from": "member", "format": "lines"}, headers=admin
    )
    (tmp_path / "secret.txt").write_text("root:x:0:0\n")
    messages = set()
    for source in (
        "/etc/passwd",
        str(tmp_path / "secret.txt"),
        str(tmp_path / "missing.txt"),
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data",
        f"{inbox}/../secret.txt",
        "zip://x::file:///etc/passwd",
    ):
        response = client.post(
            "/v1/classifiers/desk/profiles/lines/try", json={"source": source}, headers=admin
        )
        messages.add(error_of(response, 400).replace(repr(source), "SOURCE"))
    assert messages == {
        "source SOURCE is not in an allowed data location (setting TAGLOOP_ALLOWED_DATA_URLS)"
    }


def test_try_refuses_bombs_and_escaping_members_with_their_reason(served):
    client, _, keys, inbox = served
    admin = auth(keys["admin"])
    client.put(
        "/v1/classifiers/desk/profiles/lines", json={"label_from": "member", "format": "lines"}, headers=admin
    )
    bomb = inbox / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", b"\n" * 5_000_000)
    evil = inbox / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../a.txt", "x\n")
    for source, reason in ((bomb, "TAGLOOP_ARCHIVE_MAX_RATIO"), (evil, "out of the extraction folder")):
        response = client.post(
            "/v1/classifiers/desk/profiles/lines/try", json={"source": str(source)}, headers=admin
        )
        assert reason in error_of(response, 400)


def test_bodies_are_bounded_and_garbage_is_never_a_5xx(served):
    client, _, keys, _ = served
    admin = auth(keys["admin"]) | {"Content-Type": "application/json"}
    url = "/v1/classifiers/issues/profiles/p"
    error_of(client.put(url, content=b'{"query": "' + b"a" * 200_000 + b'"}', headers=admin), 413)
    for content in (
        b"",
        b"{",
        b"\xff\xfe",
        b'{"filters": [{"column": null}]}',
        b'{"label_map": [1]}',
        b"null",
    ):
        response = client.put(url, content=content, headers=admin)
        assert 400 <= response.status_code < 500, (content, response.text)
    for name in ("a" * 64, "../x", "a b", "%2e%2e"):
        assert (
            400
            <= client.put(f"/v1/classifiers/issues/profiles/{name}", json={}, headers=admin).status_code
            < 500
        )
    tried = client.post(f"{url}/try", json={"source": "x", "rows": 10_000}, headers=admin)
    error_of(tried, 422)
    error_of(client.post("/v1/classifiers/nobody/profiles/p/try", json={}, headers=admin), 404)
