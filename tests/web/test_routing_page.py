"""The admin's routing pages (``/admin/routing``): every endpoint with its policy, the form
that changes one (stored through EndpointService, refused field by field with the messages
/v1 and the CLI give), turning routing off, and who may do it (admins only, CSRF token)."""

from __future__ import annotations

import csv
import html
import re

import pytest
from sqlalchemy import select

from tagloop.api.server import create_app
from tagloop.domain.records import Mode
from tagloop.domain.routing import RoutingPolicy
from tagloop.errors import InvalidRequest
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.tables import EndpointRow

from .conftest import FAST, PASSWORD, csrf_of
from .test_pages import every_route

DESK_LABELS = ["ACCESS", "BILLING", "EMAIL", "HARDWARE", "NETWORK", "SOFTWARE"]
OFF = {"endpoint": "desk", "active": False} | RoutingPolicy().to_dict()


def write_rows(path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


@pytest.fixture(scope="module")
def trained_app(tmp_path_factory, tickets):
    """One app for the module: endpoint ``desk`` (multi-class, the demo tickets) and ``tags``
    (multi-label), users ana (reviewer), mo (moderator), ad (admin)."""
    folder = tmp_path_factory.mktemp("routing-page")
    app = create_app(Settings(data_dir=folder / "data"), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.users.hasher = FAST
    for name, role in (("ana", "reviewer"), ("mo", "moderator"), ("ad", "admin")):
        tagloop.users.create(name, role, PASSWORD)
    desk, tags = folder / "desk.csv", folder / "tags.csv"
    write_rows(desk, tickets)
    write_rows(
        tags, [(label if i % 3 else f"{label}|URGENT", text) for i, (label, text) in enumerate(tickets)]
    )
    tagloop.training.train(TrainRequest(classifier="desk", data=str(desk)))
    tagloop.training.train(TrainRequest(classifier="tags", data=str(tags), mode=Mode.MULTI_LABEL))
    for name in ("desk", "tags"):
        tagloop.queue.run_now(tagloop.endpoints.create(name, name, "v1")["job_id"])
    yield app
    tagloop.close()


@pytest.fixture
def web_app(trained_app):
    """conftest's ``browser`` clients on the module's app, every routing off at the start."""
    for name in ("desk", "tags"):
        trained_app.state.tagloop.endpoints.set_routing(name, None)
    return trained_app


def field_error(page: str, name: str) -> str | None:
    found = re.search(rf'data-error="{name}">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else None


def setting(page: str, name: str) -> str:
    found = re.search(rf'data-setting="{name}">([^<]*)<', page)
    assert found, name
    return html.unescape(found.group(1))


def form_of(page: str, **changes) -> dict:
    """The edit form as the page fills it (its number fields and ticked labels), changed."""
    form: dict = {"csrf": csrf_of(page)}
    for name, value in re.findall(r'<input id="(\w+)" name="\w+" type="number"[^>]* value="([^"]*)"', page):
        form[name] = html.unescape(value)
    form["label"] = re.findall(r'name="label" value="([^"]+)" checked', page)
    return form | changes


def message_of(policy: dict) -> str:
    with pytest.raises(InvalidRequest) as refused:
        RoutingPolicy.from_dict(policy)
    return refused.value.message


def test_the_list_shows_every_endpoint_what_it_serves_and_its_policy(browser, web_app):
    tagloop = web_app.state.tagloop
    tagloop.endpoints.set_routing("desk", {"threshold": 0.6, "audit": 0.05, "labels": ["BILLING"]})
    admin = browser("ad")
    nav = admin.get("/review").text
    assert 'href="/admin/routing"' in nav
    assert 'href="/admin/routing"' in admin.get("/admin").text
    page = admin.get("/admin/routing")
    assert page.status_code == 200 and 'aria-current="page">Routing<' in page.text
    desk, tags = page.text.split('data-endpoint="tags"')
    assert 'data-endpoint="desk"' in desk and "routing on" in desk and "multi-class" in desk
    assert 'data-testid="version">v1<' in desk and "<span>classifier <strong>desk</strong></span>" in desk
    assert setting(desk, "threshold") == "below 0.6" and setting(desk, "audit") == "0.05 (5 %)"
    assert setting(desk, "labels") == "BILLING" and setting(desk, "margin") == "off"
    assert setting(desk, "lifetime_seconds") == "never expires" and setting(desk, "required") == "1"
    assert "routing off" in tags and "multi-label" in tags and setting(tags, "band") == "off"
    assert 'data-setting="margin"' not in tags  # multi-label: no margin rule
    assert 'href="/admin/routing/desk"' in desk and 'href="/admin/routing/tags"' in tags
    assert " style=" not in page.text and not re.search(r"<script(?![^>]*\bsrc=)", page.text)


def test_an_admin_changes_a_policy_and_turns_it_off(browser, web_app):
    endpoints = web_app.state.tagloop.endpoints
    admin = browser("ad")
    page = admin.get("/admin/routing/desk")
    assert page.status_code == 200 and "routing off" in page.text
    assert re.findall(r'name="label" value="([^"]+)"', page.text) == DESK_LABELS  # the model's labels
    changes = {"threshold": "0.7", "audit": "0.1", "label": ["NETWORK", "EMAIL"], "required": "2"}
    changes |= {"lease_seconds": "600", "lifetime_seconds": "3600"}
    saved = admin.post("/admin/routing/desk", data=form_of(page.text, **changes), follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, "/admin/routing/desk?saved=saved")
    stored = OFF | {"active": True, "threshold": 0.7, "audit": 0.1, "labels": ["EMAIL", "NETWORK"]}
    stored |= {"required": 2, "lease_seconds": 600, "lifetime_seconds": 3600}
    assert endpoints.routing("desk") == stored
    shown = admin.get(saved.headers["location"]).text
    assert 'data-testid="notice">Saved' in shown and "routing on" in shown
    assert setting(shown, "threshold") == "below 0.7" and setting(shown, "labels") == "EMAIL, NETWORK"
    assert setting(shown, "lifetime_seconds") == "3600 s"
    again = form_of(shown)
    assert again["threshold"] == "0.7" and again["lifetime_seconds"] == "3600" and again["audit"] == "0.1"
    assert sorted(again["label"]) == ["EMAIL", "NETWORK"]
    cleared = admin.post(
        "/admin/routing/desk", data=again | {"lifetime_seconds": "", "label": []}, follow_redirects=False
    )
    assert cleared.status_code == 303
    assert endpoints.routing("desk") == stored | {"lifetime_seconds": None, "labels": []}  # empty: off
    off = admin.post("/admin/routing/desk/off", data={"csrf": again["csrf"]}, follow_redirects=False)
    assert off.headers["location"] == "/admin/routing/desk?saved=off"
    assert endpoints.routing("desk") == OFF
    assert "Routing is off" in admin.get(off.headers["location"]).text


def test_a_multi_label_endpoint_gets_its_band(browser, web_app):
    admin = browser("ad")
    page = admin.get("/admin/routing/tags")
    assert 'name="band_low"' in page.text and 'name="margin"' not in page.text
    assert "URGENT" in re.findall(r'name="label" value="([^"]+)"', page.text)
    form = form_of(page.text, band_low="0.4", band_high="0.6", label=["URGENT"])
    assert admin.post("/admin/routing/tags", data=form, follow_redirects=False).status_code == 303
    policy = web_app.state.tagloop.endpoints.routing("tags")
    assert policy["band"] == [0.4, 0.6] and policy["labels"] == ["URGENT"] and policy["active"]
    assert setting(admin.get("/admin/routing/tags").text, "band") == "0.4 to 0.6"


@pytest.mark.parametrize(
    ("sent", "field", "policy"),
    [
        ({"threshold": "1.5"}, "threshold", {"threshold": 1.5}),
        ({"threshold": "high"}, "threshold", {"threshold": "high"}),
        ({"audit": "-0.1"}, "audit", {"audit": -0.1}),
        ({"required": "4"}, "required", {"required": 4}),
        ({"required": "1.5"}, "required", {"required": 1.5}),
        ({"lease_seconds": "5"}, "lease_seconds", {"lease_seconds": 5}),
        ({"lifetime_seconds": "1000000000"}, "lifetime_seconds", {"lifetime_seconds": 10**9}),
    ],
)
def test_a_bad_value_is_shown_next_to_its_field_and_nothing_is_stored(browser, web_app, sent, field, policy):
    endpoints = web_app.state.tagloop.endpoints
    before = endpoints.set_routing("desk", {"threshold": 0.5, "labels": ["BILLING"]})
    admin = browser("ad")
    refused = admin.post("/admin/routing/desk", data=form_of(admin.get("/admin/routing/desk").text, **sent))
    assert refused.status_code == 400
    assert field_error(refused.text, field) == message_of(policy)  # the domain's message, as /v1's
    assert message_of(policy).startswith(f"{field}: ")
    assert 'data-testid="errors">Nothing was saved' in refused.text
    others = [name for name in ("threshold", "audit", "required", "lease_seconds") if name != field]
    assert all(field_error(refused.text, name) is None for name in others)
    assert f'id="{field}" name="{field}"' in refused.text and 'aria-invalid="true"' in refused.text
    assert endpoints.routing("desk") == before


def test_every_bad_field_is_named_at_once_with_the_message_v1_gives(browser, web_app):
    tagloop = web_app.state.tagloop
    admin = browser("ad")
    page = admin.get("/admin/routing/tags").text
    form = form_of(page, threshold="2", band_low="0.7", band_high="0.2", required="0", label=["EVIL"])
    form["lease_seconds"] = "9" * 100_000
    refused = admin.post("/admin/routing/tags", data=form)
    assert refused.status_code == 400
    assert field_error(refused.text, "threshold") == "threshold: 2.0 is not between 0 and 1"
    assert field_error(refused.text, "band") == "band: low 0.7 is above high 0.2"
    assert field_error(refused.text, "required") == "required: 0 is not from 1 to 3"
    assert field_error(refused.text, "labels") == "labels: 'EVIL' is not one of this endpoint's labels"
    long = field_error(refused.text, "lease_seconds")
    assert long == f"lease_seconds: expected a whole number from 30 to 28,800, got '{'9' * 50}...'"
    assert "9" * 52 not in refused.text
    assert 'id="band_low" name="band_low" type="number"' in refused.text
    assert 'value="0.7"' in refused.text and 'value="EVIL"' not in refused.text  # as sent, but no strange box
    assert tagloop.endpoints.routing("tags") == OFF | {"endpoint": "tags"}
    key = tagloop.keys.create("routing-admin", "admin")
    api = admin.put(
        "/v1/endpoints/tags/routing",
        json={"band": [0.7, 0.2]},
        headers={"Authorization": f"Bearer {key['secret']}"},
    )
    assert api.status_code == 400 and api.json()["error"]["message"] == "band: low 0.7 is above high 0.2"


def test_a_stored_policy_that_cannot_be_read_is_said_and_can_be_saved_over(browser, web_app):
    tagloop = web_app.state.tagloop
    with tagloop.database.transaction() as session:  # a row written by hand
        row = session.scalars(select(EndpointRow).where(EndpointRow.name == "desk")).one()
        row.routing = {"threshold": 5}
    admin = browser("ad")
    listed = admin.get("/admin/routing")
    assert listed.status_code == 200 and "threshold: 5 is not between 0 and 1" in listed.text
    page = admin.get("/admin/routing/desk")
    assert "cannot be read" in page.text and "routing off" in page.text
    form = form_of(page.text, threshold="0.4")
    saved = admin.post("/admin/routing/desk", data=form, follow_redirects=False)
    assert saved.status_code == 303 and tagloop.endpoints.routing("desk")["threshold"] == 0.4


def test_a_post_without_the_csrf_token_is_refused(browser, web_app):
    endpoints = web_app.state.tagloop.endpoints
    admin = browser("ad")
    form = form_of(admin.get("/admin/routing/desk").text, threshold="0.9")
    for token in ({}, {"csrf": "wrong"}):
        for path in ("/admin/routing/desk", "/admin/routing/desk/off"):
            response = admin.post(path, data={k: v for k, v in form.items() if k != "csrf"} | token)
            assert response.status_code == 403 and "CSRF" in response.text, (path, token)
    cross_site = admin.post("/admin/routing/desk", data=form, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert endpoints.routing("desk") == OFF


@pytest.mark.parametrize("name", ["ana", "mo"])
def test_reviewers_and_moderators_get_403(browser, web_app, name):
    endpoints = web_app.state.tagloop.endpoints
    endpoints.set_routing("desk", {"threshold": 0.5})
    client = browser(name)
    assert 'href="/admin/routing"' not in client.get("/review").text
    for path in ("/admin/routing", "/admin/routing/desk"):
        assert client.get(path, follow_redirects=False).status_code == 403, path
    token = csrf_of(client.get("/review").text)  # their own valid token
    for path in ("/admin/routing/desk", "/admin/routing/desk/off"):
        response = client.post(path, data={"csrf": token, "threshold": "0.9"}, follow_redirects=False)
        assert response.status_code == 403, path
    assert endpoints.routing("desk")["threshold"] == 0.5
    anonymous = browser()
    response = anonymous.get("/admin/routing/desk", follow_redirects=False)
    assert response.headers["location"] == "/login?next=/admin/routing/desk"


def test_unknown_and_bad_endpoint_names(browser):
    admin = browser("ad")
    missing = admin.get("/admin/routing/nope")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    token = csrf_of(admin.get("/admin/routing").text)
    assert admin.post("/admin/routing/nope/off", data={"csrf": token}).status_code == 404
    assert admin.get("/admin/routing/bad%20name").status_code == 400


def test_the_routing_routes_are_for_admins(web_app):
    routes = {
        (route.path, method): [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
        for route in every_route(web_app.routes)
        if route.path.startswith("/admin/routing")
        for method in route.methods
    }
    assert set(routes) == {
        ("/admin/routing", "GET"),
        ("/admin/routing/{name}", "GET"),
        ("/admin/routing/{name}", "POST"),
        ("/admin/routing/{name}/off", "POST"),
    }
    assert all("admin" in roles for roles in routes.values())
