"""The inboxes admin page on real inboxes in temporary folders: what it shows of each inbox and
its files (processed with the deployment's outcome, failed with the reason, waiting), that its
buttons disable, enable and scan, the empty state's next step, and that only admins reach it
(a reviewer or moderator gets 403, a POST without the CSRF token too, and nothing changes)."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest

from .conftest import csrf_of

PAGE = "/admin/inboxes"


def csv_text(rows) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def said(page: str, testid: str, within: str = "") -> str:
    found = re.search(rf'{within}.*?data-testid="{testid}"[^>]*>(.*?)</(?:p|dd|span|code|a)>', page, re.S)
    assert found, page[:3000]
    return re.sub(r"<[^>]+>", "", html.unescape(found.group(1))).strip()


def section(page: str, inbox: str) -> str:
    """The part of the page about one inbox."""
    found = re.search(rf'<section class="card c2" data-inbox="{inbox}">(.*?)</section>', page, re.S)
    assert found, page[:3000]
    return found.group(1)


def file_item(part: str, name: str) -> str:
    found = re.search(rf'<li class="c2-row" data-file="{re.escape(name)}"(.*?)</li>', part, re.S)
    assert found, part[:3000]
    return found.group(1)


@pytest.fixture
def drop(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def test_no_inbox_says_how_to_add_one(browser):
    client = browser("ad")
    page = client.get(PAGE)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    empty = said(page.text, "no-inboxes", within="")
    assert empty.startswith("No inbox yet")
    assert "tagloop inbox add CLASSIFIER FOLDER --profile P" in page.text and "POST /v1/inboxes" in page.text
    assert f'<a href="{PAGE}" aria-current="page">Inboxes</a>' in page.text  # in the top bar, here


def test_an_inbox_shows_its_files_and_is_scanned_disabled_and_enabled(browser, web_app, drop, tickets):
    tagloop = web_app.state.tagloop
    tagloop.inbox.add("desk", str(drop), deploy="auto")
    client = browser("ad")
    page = client.get(PAGE).text
    part = section(page, "desk")
    assert said(part, "url") == str(drop) and said(part, "enabled") == "enabled"
    assert said(part, "deploy") == "auto" and said(part, "profile").startswith("none")
    assert 'data-testid="no-files"' in part
    token = csrf_of(page)

    (drop / "good.csv").write_text(csv_text(tickets))
    (drop / "good.csv.ready").touch()
    (drop / "bad.csv").write_text("NETWORK,\n,no label here\n")
    (drop / "bad.csv.ready").touch()
    (drop / "slow.csv").write_text(csv_text(tickets[:5]))  # no marker: seen, waits to be stable
    scanned = client.post(f"{PAGE}/desk/scan", data={"csrf": token}, follow_redirects=False)
    assert scanned.status_code == 303
    page = client.get(scanned.headers["location"]).text
    assert (
        said(page, "notice")
        == "Inbox desk scanned: 1 file waiting to be complete, 2 picked up (their jobs are queued)."
    )
    assert {f["name"]: f["state"] for f in tagloop.inbox.status("desk")["recent_files"]} == {
        "good.csv": "claimed",
        "bad.csv": "claimed",
        "slow.csv": "seen",
    }
    assert tagloop.queue.run_until_idle() == 2  # no workers in this test: the queued jobs run here

    part = section(client.get(PAGE).text, "desk")
    counts = dict(re.findall(r'data-state="(\w+)"><b>(\d+)</b>', part))
    assert counts == {
        "seen": "1",
        "claimed": "0",
        "training": "0",
        "deploying": "0",
        "processed": "1",
        "failed": "1",
    }
    good = file_item(part, "good.csv")
    assert said(good, "state") == "processed" and said(good, "version") == "version v1"
    assert said(good, "moved-to") == "processed/good.csv"
    assert said(good, "deployment").startswith("created (desk): the classifier had no endpoint")
    assert 'href="/console/classifiers/desk/versions/v1"' in good
    bad = file_item(part, "bad.csv")
    assert said(bad, "state") == "failed" and said(bad, "moved-to") == "failed/bad.csv"
    assert "rejected" in said(bad, "file-error") and "failed/bad.csv.error.json" in bad
    assert said(file_item(part, "slow.csv"), "state") == "seen"
    assert "bad.csv" in said(part, "last-error")  # the inbox's last error: its newest failed file
    assert tagloop.endpoints.show("desk")["version"] == "v1"  # what the page said happened, happened

    disabled = client.post(f"{PAGE}/desk/disable", data={"csrf": token}, follow_redirects=True)
    assert said(disabled.text, "notice").startswith("Inbox desk is disabled")
    assert said(section(disabled.text, "desk"), "enabled") == "disabled"
    assert [i["enabled"] for i in tagloop.inbox.list()] == [False]
    assert tagloop.inbox.scan()["inboxes"] == []  # the server's scans skip it
    enabled = client.post(f"{PAGE}/desk/enable", data={"csrf": token}, follow_redirects=True)
    assert said(enabled.text, "notice").startswith("Inbox desk is enabled")
    assert [i["enabled"] for i in tagloop.inbox.list()] == [True]


def test_a_folder_that_cannot_be_listed_shows_as_the_last_error(browser, web_app, drop):
    tagloop = web_app.state.tagloop
    tagloop.inbox.add("desk", str(drop))
    drop.rmdir()
    client = browser("ad")
    token = csrf_of(client.get(PAGE).text)
    page = client.post(f"{PAGE}/desk/scan", data={"csrf": token}, follow_redirects=True).text
    assert said(page, "notice") == "Inbox desk was scanned but could not be listed: see its last error."
    assert said(section(page, "desk"), "last-error").startswith(f"Last error: cannot list {drop}")


def test_unknown_inboxes_and_actions_are_said_on_the_page(browser, web_app, drop):
    web_app.state.tagloop.inbox.add("desk", str(drop))
    client = browser("ad")
    token = csrf_of(client.get(PAGE).text)
    unknown = client.post(f"{PAGE}/nope/scan", data={"csrf": token})
    assert unknown.status_code == 404 and "nope" in said(unknown.text, "error")
    odd = client.post(f"{PAGE}/desk/remove", data={"csrf": token})
    assert odd.status_code == 404 and "remove" in said(odd.text, "error")
    assert client.post(f"{PAGE}/bad%20name/enable", data={"csrf": token}).status_code == 400
    assert [i["name"] for i in web_app.state.tagloop.inbox.list()] == ["desk"]


@pytest.mark.parametrize("name", ["ana", "mo"])
def test_only_admins_reach_the_inboxes_page(browser, web_app, drop, name):
    tagloop = web_app.state.tagloop
    tagloop.inbox.add("desk", str(drop))
    (drop / "a.csv").write_text("NETWORK,vpn down\n")
    (drop / "a.csv.ready").touch()
    client = browser(name)
    response = client.get(PAGE, follow_redirects=False)
    assert response.status_code == 403 and "this page is for the role admin" in response.text
    token = csrf_of(client.get("/review").text)
    for action in ("disable", "enable", "scan"):
        assert client.post(f"{PAGE}/desk/{action}", data={"csrf": token}).status_code == 403, action
    assert f'href="{PAGE}"' not in client.get("/review").text
    summary = tagloop.inbox.status("desk")
    assert summary["enabled"] is True and summary["recent_files"] == [] and summary["scanned_at"] is None


def test_inbox_posts_without_the_csrf_token_change_nothing(browser, web_app, drop):
    tagloop = web_app.state.tagloop
    tagloop.inbox.add("desk", str(drop))
    (drop / "a.csv").write_text("NETWORK,vpn down\n")
    client = browser("ad")
    for action in ("disable", "scan"):
        response = client.post(f"{PAGE}/desk/{action}", data={"csrf": "forged"})
        assert response.status_code == 403 and "CSRF" in response.text, action
        assert client.post(f"{PAGE}/desk/{action}").status_code == 403, action
    summary = tagloop.inbox.status("desk")
    assert summary["enabled"] is True and summary["recent_files"] == [] and summary["scanned_at"] is None
