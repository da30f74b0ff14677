"""The prediction pages (``/predictions``, ``/predictions/{id}``): recent predictions filtered by
endpoint, label, score range, routed and feedback; one prediction with its scores, feedback and
review trail; bad filters named on the page; moderators and admins only."""

from __future__ import annotations

import html
import re

import pytest

from tagloop.api.server import create_app
from tagloop.settings import Settings

from .conftest import FAST, PASSWORD
from .console2_data import Seeded, seed


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, tickets):
    folder = tmp_path_factory.mktemp("predictions-page")
    app = create_app(Settings(data_dir=folder / "data"), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.users.hasher = FAST
    for name, role in (("ana", "reviewer"), ("mo", "moderator"), ("ad", "admin")):
        tagloop.users.create(name, role, PASSWORD)
    found = seed(tagloop, folder, tickets)
    yield app, found
    tagloop.close()


@pytest.fixture
def web_app(seeded):
    return seeded[0]


@pytest.fixture
def data(seeded) -> Seeded:
    return seeded[1]


def listed(page: str) -> list[str]:
    return re.findall(r'data-prediction="([^"]+)"', page)


def test_recent_predictions_newest_first_with_their_review_marks(browser, data):
    page = browser("mo").get("/predictions")
    assert page.status_code == 200
    assert listed(page.text) == data.ids
    row = page.text.split(f'data-prediction="{data.routed}"')[1].split("</li>")[0]
    assert "review: low confidence" in row and "feedback" not in row
    row = page.text.split(f'data-prediction="{data.feedback}"')[1].split("</li>")[0]
    assert 'class="c2-badge feedback"' in row


def test_filters_by_routed_feedback_label_and_score(browser, data, web_app):
    client = browser("mo")
    assert listed(client.get("/predictions?routed=yes").text) == [data.routed]
    assert listed(client.get("/predictions?feedback=yes").text) == [data.feedback]
    assert set(listed(client.get("/predictions?routed=no&feedback=no").text)) == set(data.ids) - {
        data.routed,
        data.feedback,
    }
    items, _ = web_app.state.tagloop.prediction_history.page(limit=100)
    label = items[0]["label"]
    assert listed(client.get(f"/predictions?label={label}").text) == [
        i["id"] for i in items if i["label"] == label
    ]
    scores = sorted(item["score"] for item in items)
    middle = (scores[2] + scores[5]) / 2
    high = listed(client.get(f"/predictions?min_score={middle}").text)
    assert high == [item["id"] for item in items if item["score"] >= middle] and 0 < len(high) < len(items)
    low = listed(client.get(f"/predictions?max_score={middle}&endpoint=desk").text)
    assert set(low) == set(data.ids) - set(high)
    assert listed(client.get("/predictions?endpoint=nowhere").text) == []
    assert "No logged prediction matches these filters" in client.get("/predictions?endpoint=nowhere").text


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("min_score=abc", "min score: a score from 0 to 1"),
        ("max_score=1.5", "max score: a score from 0 to 1"),
        ("min_score=nan", "min score: a score from 0 to 1"),
        ("min_score=0.9&max_score=0.1", "must not be below the min score"),
        ("routed=maybe", "routed: yes, no or empty"),
        ("cursor=%00%ff", "the cursor is not one this service gave"),
        ("label=%00", "label: must not contain NUL"),
    ],
)
def test_a_bad_filter_is_named_on_the_page_not_a_server_error(browser, query, said):
    page = browser("mo").get(f"/predictions?{query}")
    assert page.status_code == 400
    assert said in html.unescape(page.text)


def test_pages_of_older_predictions_follow_the_cursor(browser, data, monkeypatch):
    from tagloop.web import predictions

    monkeypatch.setattr(predictions, "PAGE_SIZE", 3)
    client = browser("mo")
    seen, url = [], "/predictions?endpoint=desk"
    while url:
        page = client.get(url).text
        seen += listed(page)
        found = re.search(r'href="(/predictions\?[^"]+)" data-testid="older"', page)
        url = html.unescape(found.group(1)) if found else None
    assert seen == data.ids


def test_one_prediction_shows_its_scores_answers_and_decision(browser, data):
    client = browser("mo")
    page = client.get(f"/predictions/{data.routed}").text
    assert "Routed to review: low confidence" in page
    assert "<strong>ana</strong>" in page and "<strong>bob</strong>" in page
    assert 'data-testid="final">BILLING<' in page
    assert page.count("<tr") - 1 == len(data.labels)  # every label's score
    feedback = client.get(f"/predictions/{data.feedback}").text
    assert "End-user feedback" in feedback and "it is Excel" in feedback and ">wrong<" in feedback
    assert 'data-testid="final">SOFTWARE<' in feedback and "(mo)" in feedback
    plain = client.get(f"/predictions/{data.ids[0]}").text
    assert 'data-testid="no-trail"' in plain and "POST /v1/feedback" in plain


def test_an_unknown_prediction_is_a_404_page(browser):
    for made_up in ("nope", "x" * 5_000, "%00"):
        page = browser("mo").get(f"/predictions/{made_up}")
        assert page.status_code == 404 and "text/html" in page.headers["content-type"]


def test_reviewers_see_no_predictions(browser, data):
    client = browser("ana")
    for path in ("/predictions", f"/predictions/{data.routed}"):
        assert client.get(path, follow_redirects=False).status_code == 403
    assert 'href="/predictions"' not in client.get("/review").text
    assert (
        browser().get("/predictions", follow_redirects=False).headers["location"]
        == "/login?next=/predictions"
    )
