"""The web UI's login, sessions, role guards, CSRF and headers, and what an attacker tries."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.services.users import token_digest
from tagloop.settings import Settings
from tagloop.storage.tables import WebSessionRow
from tagloop.web import owns

from .conftest import FAST, PASSWORD, csrf_of, log_in

HOST = "testserver.local"  # where the test client keeps the server's cookies


def cookies_set(response) -> dict[str, SimpleCookie]:
    found = {}
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


def test_the_root_leads_to_the_login_page_or_the_queue(browser):
    anonymous = browser()
    assert anonymous.get("/", follow_redirects=False).headers["location"] == "/login"
    signed_in = browser("ana")
    assert signed_in.get("/", follow_redirects=False).headers["location"] == "/review"
    page = signed_in.get("/")
    assert page.status_code == 200 and page.url.path == "/review"
    assert 'data-testid="user">ana<' in page.text and 'data-testid="role">reviewer<' in page.text


def test_a_page_of_a_logged_out_person_sends_them_to_log_in_and_back(browser):
    client = browser()
    response = client.get("/moderate?x=1", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login?next=/moderate%3Fx%3D1")
    page = client.get(response.headers["location"])
    assert 'name="next" value="/moderate?x=1"' in page.text
    landed = log_in(client, "mo", next="/moderate?x=1")
    assert landed.headers["location"] == "/moderate?x=1"
    htmx = browser().post("/admin/users/ana/disable", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


def test_the_session_cookie_is_httponly_strict_and_secure_over_https(browser):
    login = log_in(browser(), "ana")
    session = cookies_set(login)["tagloop_session"]["tagloop_session"]
    assert session["httponly"] and session["samesite"].lower() == "strict" and session["path"] == "/"
    assert not session["secure"]  # plain HTTP: a Secure cookie would never come back
    assert int(session["max-age"]) == 12 * 3600
    over_https = log_in(browser(base_url="https://tagloop.example"), "ana")
    secure = cookies_set(over_https)["tagloop_session"]["tagloop_session"]
    assert secure["secure"] and secure["httponly"] and secure["samesite"].lower() == "strict"
    login_cookie = cookies_set(browser().get("/login"))["tagloop_login"]["tagloop_login"]
    assert login_cookie["httponly"] and login_cookie["samesite"].lower() == "strict"
    assert login_cookie["path"] == "/login"


def test_the_database_keeps_only_the_tokens_digest(browser, web_app):
    login = log_in(browser(), "ana")
    token = cookies_set(login)["tagloop_session"]["tagloop_session"].value
    with web_app.state.tagloop.database.reading() as session:
        stored = [row.token_sha256 for row in session.query(WebSessionRow)]
    assert stored == [token_digest(token)]


def test_wrong_and_unknown_logins_look_the_same(browser):
    client = browser()
    wrong, unknown = log_in(client, "ana", "wrong horse"), log_in(client, "nobody", "wrong horse")
    assert wrong.status_code == unknown.status_code == 401
    message = re.compile(r'data-testid="login-error">([^<]*)<')
    assert message.search(wrong.text).group(1) == message.search(unknown.text).group(1)
    assert "tagloop_session" not in cookies_set(wrong) and "tagloop_session" not in cookies_set(unknown)
    assert 'value="nobody"' in unknown.text  # the name stays in the form, never the password
    assert "wrong horse" not in unknown.text


def test_a_throttled_login_answers_429_with_retry_after(browser, web_app):
    client = browser()
    for _ in range(5):
        assert log_in(client, "ana", "wrong horse").status_code == 401
    throttled = log_in(client, "ana", PASSWORD)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert "too many failed logins" in throttled.text


def every_route(routes) -> list[APIRoute]:
    """Every APIRoute, looking inside included routers."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        for inner in (getattr(route, "original_router", None), route):
            if inner is not route or not isinstance(route, APIRoute):
                found += every_route(getattr(inner, "routes", []))
                break
    return found


def test_every_web_route_declares_who_may_reach_it(web_app):
    routes = [
        route
        for route in every_route(web_app.routes)
        if any(owns({"path": route.path, "method": method}) for method in route.methods)
    ]
    assert {"/", "/login", "/logout", "/review", "/moderate", "/admin", "/static/{name}"} <= {
        route.path for route in routes
    }
    for route in routes:
        roles = [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
        assert any(roles), f"{route.path} declares no role (use security.role or security.public)"
        assert not route.include_in_schema


@pytest.mark.parametrize(
    ("name", "reachable"),
    [("ana", {"/review"}), ("mo", {"/review", "/moderate"}), ("ad", {"/review", "/moderate", "/admin"})],
)
def test_roles_guard_pages(browser, name, reachable):
    client = browser(name)
    for path in ("/review", "/moderate", "/admin"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == (200 if path in reachable else 403), (name, path)
        if response.status_code == 403:
            assert "text/html" in response.headers["content-type"]
            assert "Back to your queue" in response.text
    nav = client.get("/review").text
    assert ('href="/moderate"' in nav) == ("/moderate" in reachable)
    assert ('href="/admin"' in nav) == ("/admin" in reachable)


def test_a_reviewer_cannot_use_admin_actions_even_with_a_token(browser, web_app):
    reviewer = browser("ana")
    token = csrf_of(reviewer.get("/review").text)
    response = reviewer.post("/admin/users/mo/disable", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 403
    assert not any(user["disabled"] for user in web_app.state.tagloop.users.list())


def test_every_post_without_the_csrf_token_is_refused(browser, web_app):
    admin = browser("ad")
    token = csrf_of(admin.get("/admin").text)
    for data, headers in (({}, {}), ({"csrf": "wrong"}, {}), ({}, {"X-CSRF-Token": "wrong"})):
        for path in ("/admin/users/ana/disable", "/logout"):
            response = admin.post(path, data=data, headers=headers, follow_redirects=False)
            assert response.status_code == 403, (path, data, headers)
            assert "CSRF" in response.text
    assert not any(user["disabled"] for user in web_app.state.tagloop.users.list())
    assert admin.get("/review").status_code == 200  # still logged in
    by_header = admin.post(
        "/admin/users/ana/disable", headers={"X-CSRF-Token": token}, follow_redirects=False
    )
    assert by_header.status_code == 303
    by_form = admin.post("/admin/users/ana/enable", data={"csrf": token}, follow_redirects=False)
    assert by_form.status_code == 303
    assert not any(user["disabled"] for user in web_app.state.tagloop.users.list())


def test_a_cross_site_post_is_refused_even_with_the_token(browser):
    admin = browser("ad")
    token = csrf_of(admin.get("/admin").text)
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        response = admin.post("/admin/users/ana/disable", data={"csrf": token}, headers=headers)
        assert response.status_code == 403, headers
    same_origin = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    ok = admin.post(
        "/admin/users/ana/disable", data={"csrf": token}, headers=same_origin, follow_redirects=False
    )
    assert ok.status_code == 303


def test_the_login_form_has_its_own_csrf_token(browser):
    client = browser()
    client.get("/login")
    without = client.post("/login", data={"name": "ana", "password": PASSWORD}, follow_redirects=False)
    assert without.status_code == 403 and "tagloop_session" not in cookies_set(without)
    wrong = client.post("/login", data={"csrf": "x" * 43, "name": "ana", "password": PASSWORD})
    assert wrong.status_code == 403
    fresh = browser()  # a forged form from another site: the browser sends no Strict cookie
    forged = fresh.post("/login", data={"csrf": "x" * 43, "name": "ana", "password": PASSWORD})
    assert forged.status_code == 403


def test_a_planted_session_cookie_does_not_survive_a_login(browser, web_app):
    attacker = browser("mo")
    planted = attacker.cookies["tagloop_session"]
    victim = browser()
    form = {"csrf": csrf_of(victim.get("/login").text), "name": "ana", "password": PASSWORD}
    victim.cookies.set("tagloop_session", planted, HOST)  # the attacker's own session, planted
    login = victim.post("/login", data=form, follow_redirects=False)
    issued = cookies_set(login)["tagloop_session"]["tagloop_session"].value
    assert issued != planted
    assert victim.get("/review").text.count('data-testid="user">ana<') == 1
    assert attacker.get("/review", follow_redirects=False).status_code == 303  # the planted one ended
    made_up = browser()
    made_up.cookies.set("tagloop_session", "chosen-by-the-attacker", HOST)
    assert made_up.get("/review", follow_redirects=False).status_code == 303  # never adopted
    log_in(made_up, "ana")
    assert made_up.cookies["tagloop_session"] != "chosen-by-the-attacker"


UNSAFE_NEXT = (
    "//evil.example/",
    "https://evil.example/review",
    "/\\evil.example",
    "/%2F%2Fevil.example",
    "\\\\evil.example",
    "/review\r\nLocation: https://evil.example",
    "javascript:alert(1)",
    "/login",
    "/static/htmx.min.js",
    "/v1/keys",
)


def test_next_never_leads_off_the_web_ui(browser):
    for target in UNSAFE_NEXT:
        client = browser()
        assert log_in(client, "ana", next=target).headers["location"] == "/review", target
        page = client.get("/login", params={"next": target}, follow_redirects=False)
        assert page.headers["location"] == "/review", target  # logged in already: on, not to target


def test_a_disabled_users_session_stops_at_once(browser, web_app):
    reviewer = browser("ana")
    assert reviewer.get("/review").status_code == 200
    web_app.state.tagloop.users.disable("ana")
    response = reviewer.get("/review", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login?next=/review")
    assert log_in(browser(), "ana").status_code == 401


def test_logout_ends_the_session(browser, web_app):
    client = browser("ana")
    token = csrf_of(client.get("/review").text)
    cookie = client.cookies["tagloop_session"]
    out = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert out.headers["location"] == "/login"
    assert cookies_set(out)["tagloop_session"]["tagloop_session"]["max-age"] == "0"
    replayed = browser()
    replayed.cookies.set("tagloop_session", cookie, HOST)
    assert replayed.get("/review", follow_redirects=False).status_code == 303
    assert web_app.state.tagloop.users.session(cookie) is None


def test_pages_carry_security_headers_and_no_inline_script(browser):
    client = browser("ad")
    for path in ("/login", "/review", "/admin", "/moderate", "/nothing-here/../admin"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), "an inline script"
        assert " style=" not in response.text and "<style" not in response.text
        assert not re.search(r"\son[a-z]+=", response.text), "an inline event handler"
        assert "http://" not in response.text.replace("http://testserver", "")  # nothing from elsewhere


def test_static_files_are_served_locally(browser):
    client = browser()
    page = client.get("/login").text
    sources = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert len(sources) == 3
    for source in sources:
        response = client.get(source)
        assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in response.headers["cache-control"]
    htmx = client.get(next(source for source in sources if "htmx" in source)).text
    assert htmx.startswith("/*! htmx 2.0.11") and "0BSD" in htmx[:400]
    missing = client.get("/static/nothing.js")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    for path in ("/static/..%2Fsecurity.py", "/static/%2E%2E/render.py", "/static/"):
        assert client.get(path).status_code == 404, path


def test_web_errors_are_pages_and_the_apis_stay_json(browser):
    client = browser("ana")
    assert "text/html" in client.get("/review/nothing").headers["content-type"]
    assert client.get("/v1/endpoints").headers["content-type"] == "application/json"
    assert client.post("/", content=b"{}").headers["content-type"].startswith("application/x-amz-json")


def test_web_login_is_required_when_api_authentication_is_off(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "data", auth=False), start_workers=False)
    app.state.tagloop.users.hasher = FAST
    app.state.tagloop.users.create("ana", "reviewer", PASSWORD)
    try:
        local = TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000))
        assert local.get("/review", follow_redirects=False).headers["location"] == "/login?next=/review"
        assert log_in(local, "ana").status_code == 303
        assert local.get("/review").status_code == 200
        remote = TestClient(app, base_url="http://127.0.0.1", client=("10.1.2.3", 50000))
        assert remote.get("/login").status_code == 403  # the no-auth server answers its machine only
    finally:
        app.state.tagloop.close()
