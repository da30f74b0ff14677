"""The review statistics page (``/review/stats``) and its plots as image URLs: the queue's
size, answers per reviewer and day, agreement; empty states; moderators and admins only."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tagloop.api.server import create_app
from tagloop.settings import Settings

from .conftest import FAST, PASSWORD
from .console2_data import seed

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def web_app(tmp_path_factory, tickets):
    folder = tmp_path_factory.mktemp("review-stats")
    app = create_app(Settings(data_dir=folder / "data"), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.users.hasher = FAST
    for name, role in (("ana", "reviewer"), ("mo", "moderator"), ("ad", "admin")):
        tagloop.users.create(name, role, PASSWORD)
    seed(tagloop, folder, tickets)
    yield app
    tagloop.close()


def svg_text(response) -> tuple[str, list[str]]:
    """The image's alt text (its <title>) and every text drawn, checking it is an SVG document."""
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    assert "script-src" not in response.headers["content-security-policy"]
    root = ET.fromstring(response.text)
    assert root.tag == f"{SVG}svg"
    title = root.find(f"{SVG}title")
    return title.text, ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def test_the_page_shows_the_queue_answers_and_agreement(browser):
    page = browser("mo").get("/review/stats?classifier=desk&days=7")
    assert page.status_code == 200
    cards = dict(re.findall(r"<dt>([^<]+)</dt><dd>(\d+)</dd>", page.text))
    assert cards["waiting for reviewers"] == "5" and cards["waiting for a moderator"] == "0"
    assert cards["answers in 7 days"] == "3"  # ana and bob on the routed task, mo on the feedback
    for plot in ("queue", "answers", "agreement"):
        assert f'src="/review/stats/{plot}.svg?days=7&amp;classifier=desk"' in page.text
    assert re.search(r'data-testid="plot-queue"', page.text)
    assert "<td>ana</td><td>1</td>" in page.text and "<td>bob</td><td>1</td>" in page.text


def test_the_plots_are_svg_images_with_alt_text_and_the_right_figures(browser):
    client = browser("mo")
    title, texts = svg_text(client.get("/review/stats/queue.svg?classifier=desk&days=7"))
    assert "5 tasks waiting now" in title and "5" in texts
    title, texts = svg_text(client.get("/review/stats/answers.svg?classifier=desk&days=7"))
    assert "3 answers by 3 reviewers" in title
    assert {"ana (1)", "bob (1)", "mo (1)"} <= set(texts)
    title, texts = svg_text(client.get("/review/stats/agreement.svg?classifier=desk"))
    assert "ana 1.00 of 1 answers" in title and "bob" in texts


def test_without_a_classifier_agreement_says_to_choose_one(browser):
    page = browser("mo").get("/review/stats")
    assert 'data-testid="no-agreement"' in page.text and "choose one above" in page.text
    title, _ = svg_text(browser("mo").get("/review/stats/agreement.svg"))
    assert title == "Choose a classifier to see its reviewers' agreement"


def test_odd_parameters_fall_back_instead_of_failing(browser):
    client = browser("mo")
    for query in (
        "classifier=nope&days=5",
        "days=-1",
        "classifier=%00",
        "days=99999999999999999999",
        "days=abc",
    ):
        page = client.get(f"/review/stats?{query}")
        assert page.status_code == 200 and "Review statistics" in page.text, query  # all, 14 days
        assert client.get(f"/review/stats/queue.svg?{query}").status_code == 200


def test_reviewers_cannot_see_the_statistics(browser):
    client = browser("ana")
    for path in ("/review/stats", "/review/stats/queue.svg", "/review/stats/answers.svg"):
        assert client.get(path, follow_redirects=False).status_code == 403
