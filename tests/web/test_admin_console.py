"""The admin pages of endpoints (follow, pin), access keys (create: the secret shown once;
revoke) and users (add, change a role): what they show, the refusals they say, and that only
admins reach them (a reviewer or moderator gets 403, a POST without the CSRF token too)."""

from __future__ import annotations

import html
import re

import pytest

from tagloop.api.server import create_app
from tagloop.settings import Settings

from .conftest import FAST, PASSWORD, csrf_of, log_in
from .console2_data import seed


@pytest.fixture(scope="module")
def web_app(tmp_path_factory, tickets):
    folder = tmp_path_factory.mktemp("admin-console")
    app = create_app(Settings(data_dir=folder / "data"), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.users.hasher = FAST
    for name, role in (("ana", "reviewer"), ("mo", "moderator"), ("ad", "admin")):
        tagloop.users.create(name, role, PASSWORD)
    seed(tagloop, folder, tickets)
    yield app
    tagloop.close()


ADMIN_PAGES = ("/admin/endpoints", "/admin/keys", "/admin")
ADMIN_POSTS = (
    "/admin/endpoints/desk/follow",
    "/admin/endpoints/desk/pin",
    "/admin/keys",
    "/admin/keys/TLX/revoke",
    "/admin/users",
    "/admin/roles/ana",
)


def said(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">(.*?)</', page, re.S)
    assert found, page[:3000]
    return html.unescape(found.group(1)).strip()


def test_endpoints_show_what_they_serve_and_follow_or_pin(browser, web_app):
    tagloop = web_app.state.tagloop
    client = browser("ad")
    page = client.get("/admin/endpoints").text
    assert said(page, "serves") == "version v1" and said(page, "how") == "pinned"
    assert '<option value="v2">v2</option>' in page and '<option value="v1" selected>v1</option>' in page
    token = csrf_of(page)
    moved = client.post(
        "/admin/endpoints/desk/pin", data={"csrf": token, "version": "v2"}, follow_redirects=False
    )
    assert moved.status_code == 303 and moved.headers["location"] == "/admin/endpoints?done=pinned&name=desk"
    summary = tagloop.endpoints.show("desk")
    assert (summary["desired_version"], summary["follows"]) == ("v2", False)
    deploys = [job for job in tagloop.jobs.list(status="SUBMITTED") if job["kind"] == "deploy"]
    assert len(deploys) == 1  # the move enqueued the deploy (no workers in this test: run it here)
    tagloop.queue.run_now(deploys[0]["id"])
    assert tagloop.endpoints.show("desk")["version"] == "v2"
    assert "version v2" in client.get("/admin/endpoints").text
    followed = client.post("/admin/endpoints/desk/follow", data={"csrf": token}, follow_redirects=True)
    assert "Endpoint desk now follows its classifier&#39;s champion." in followed.text
    assert tagloop.endpoints.show("desk")["follows"] is True
    refused = client.post("/admin/endpoints/desk/pin", data={"csrf": token, "version": "v9"})
    assert refused.status_code == 404 and "v9" in said(refused.text, "error")
    unknown = client.post("/admin/endpoints/nope/follow", data={"csrf": token})
    assert unknown.status_code == 404 and "nope" in said(unknown.text, "error")
    odd = client.post("/admin/endpoints/desk/explode", data={"csrf": token})
    assert odd.status_code == 404


def test_a_key_is_created_with_its_secret_shown_once_and_revoked(browser, web_app):
    keys = web_app.state.tagloop.keys
    client = browser("ad")
    token = csrf_of(client.get("/admin/keys").text)
    created = client.post("/admin/keys", data={"csrf": token, "name": "helpdesk-app", "scope": "classify"})
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    key_id, secret = said(created.text, "new-id"), said(created.text, "new-secret")
    assert keys.by_bearer(secret).access_key_id == key_id
    again = client.get("/admin/keys").text
    assert key_id in again and secret not in again  # listed, the secret never again
    bad = client.post("/admin/keys", data={"csrf": token, "name": "x y", "scope": "root"})
    assert bad.status_code == 400 and said(bad.text, "error")
    assert 'value="x y"' in bad.text  # the form keeps what was sent
    revoked = client.post(f"/admin/keys/{key_id}/revoke", data={"csrf": token}, follow_redirects=True)
    assert f"Key {key_id} is revoked" in revoked.text
    assert keys.by_bearer(secret) is None
    assert client.post("/admin/keys/TLNOPE/revoke", data={"csrf": token}).status_code == 404


def test_users_are_added_and_their_roles_changed(browser, web_app):
    users = web_app.state.tagloop.users
    client = browser("ad")
    token = csrf_of(client.get("/admin").text)
    added = client.post(
        "/admin/users", data={"csrf": token, "name": "rita", "role": "reviewer", "password": PASSWORD}
    )
    assert added.status_code == 200 and "<td>rita</td>" in added.text
    assert log_in(browser(), "rita").status_code == 303
    promoted = client.post(
        "/admin/roles/rita", data={"csrf": token, "role": "moderator"}, follow_redirects=False
    )
    assert promoted.status_code == 303
    assert {u["name"]: u["role"] for u in users.list()}["rita"] == "moderator"
    twice = client.post(
        "/admin/users", data={"csrf": token, "name": "rita", "role": "reviewer", "password": PASSWORD}
    )
    assert twice.status_code == 409 and "rita" in said(twice.text, "user-error")
    short = client.post(
        "/admin/users", data={"csrf": token, "name": "sam", "role": "reviewer", "password": "x"}
    )
    assert short.status_code == 400 and said(short.text, "user-error")
    bad_role = client.post("/admin/roles/rita", data={"csrf": token, "role": "root"})
    assert bad_role.status_code == 400
    own = client.post("/admin/roles/ad", data={"csrf": token, "role": "reviewer"})
    assert own.status_code == 403 and {u["name"]: u["role"] for u in users.list()}["ad"] == "admin"


@pytest.mark.parametrize("name", ["ana", "mo"])
def test_only_admins_reach_the_admin_pages(browser, name):
    client = browser(name)
    for path in ADMIN_PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 403, path
        assert "this page is for the role admin" in response.text
    token = csrf_of(client.get("/review").text)
    for path in ADMIN_POSTS:
        assert client.post(path, data={"csrf": token, "name": "z", "role": "admin"}).status_code == 403, path
    nav = client.get("/review").text
    assert 'href="/admin/endpoints"' not in nav and 'href="/admin/keys"' not in nav


def test_admin_posts_without_the_csrf_token_change_nothing(browser, web_app):
    tagloop = web_app.state.tagloop
    before = (tagloop.keys.list(), tagloop.users.list(), tagloop.endpoints.show("desk")["follows"])
    client = browser("ad")
    for path in ADMIN_POSTS:
        response = client.post(
            path, data={"name": "z", "role": "admin", "scope": "admin", "password": PASSWORD}
        )
        assert response.status_code == 403 and "CSRF" in response.text, path
    after = (tagloop.keys.list(), tagloop.users.list(), tagloop.endpoints.show("desk")["follows"])
    assert [len(part) if isinstance(part, list) else part for part in after] == [
        len(part) if isinstance(part, list) else part for part in before
    ]
