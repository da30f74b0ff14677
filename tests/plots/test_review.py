"""The review plots on small data: valid SVG, alt text with the figures, labels and counts drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from tagloop.plots import review

SVG = "{http://www.w3.org/2000/svg}"
DAYS = [date(2026, 11, 20) + timedelta(days=n) for n in range(12)]


def parsed(svg: str) -> tuple[str, list[str]]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None
    return title.text or "", ["".join(node.itertext()).strip() for node in root.iter(f"{SVG}text")]


def test_queue_size_draws_the_days_and_says_the_last_count():
    waiting = [0, 2, 5, 9, 4, 4, 3, 7, 1, 0, 6, 8]
    title, texts = parsed(review.queue_size(DAYS, waiting))
    assert "8 tasks waiting now, at most 9" in title and "2026-11-20 to 2026-12-01" in title
    assert "12-01" in texts and "8" in texts and "tasks waiting" in texts
    assert len([text for text in texts if len(text) == 5 and text[2] == "-"]) <= 11  # day ticks thinned


def test_answers_per_day_names_the_busiest_reviewers_and_sums_the_rest():
    per_reviewer = {f"r{n}": [n] * len(DAYS) for n in range(1, 10)}
    title, texts = parsed(review.answers_per_day(DAYS, per_reviewer))
    total = sum(n * len(DAYS) for n in range(1, 10))
    assert f"{total} answers by 9 reviewers" in title
    assert "r9 (108)" in texts and "r3 (36)" in texts and "r2 (24)" not in texts
    assert "2 others (36)" in texts  # r1 + r2: 12 + 24


def test_agreement_bars_show_each_share_with_its_counts():
    tallies = {
        "ana": {"answers": 10, "agreed": 9, "share": 0.9},
        "bob": {"answers": 4, "agreed": 1, "share": 0.25},
        "cy": {"answers": 2, "agreed": 0, "share": None},
    }
    title, texts = parsed(review.agreement_by_reviewer(tallies))
    assert title.startswith("Agreement with the final labels per reviewer: ana 0.90 of 10 answers")
    assert {"ana", "bob", "cy", "0.90 (9/10)", "0.25 (1/4)", "0.00 (0/2)"} <= set(texts)


def test_bad_input_is_refused_and_nothing_to_draw_says_why():
    with pytest.raises(ValueError):
        review.queue_size(DAYS, [1, 2])
    with pytest.raises(ValueError):
        review.answers_per_day(DAYS, {"ana": [1]})
    with pytest.raises(ValueError):
        review.agreement_by_reviewer({})
    title, texts = parsed(review.nothing_to_draw("No answers in the last 7 days"))
    assert title == "No answers in the last 7 days" and texts == ["No answers in the last 7 days"]
