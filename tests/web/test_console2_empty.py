"""On a new install (no classifier, endpoint, prediction, task or key) every page of the
console's part B says what to do next instead of showing empty tables or plots."""

from __future__ import annotations

import html
import re


def empty_state(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">(.*?)</p>', page, re.S)
    assert found, page[:3000]
    return re.sub(r"<[^>]+>", "", html.unescape(found.group(1)))


def test_every_page_says_the_next_step_when_there_is_nothing_yet(browser):
    moderator, admin = browser("mo"), browser("ad")
    predictions = moderator.get("/predictions")
    assert predictions.status_code == 200
    assert "tagloop train NAME data.csv" in empty_state(predictions.text, "no-predictions")
    assert "tagloop endpoints create" in empty_state(predictions.text, "no-predictions")
    stats = moderator.get("/review/stats").text
    queue = empty_state(stats, "no-queue")
    assert "routing" in queue and "tagloop review fill" in queue
    assert "tagloop users create NAME --role reviewer" in empty_state(stats, "no-answers")
    assert "No classifier yet" in empty_state(stats, "no-agreement")
    assert "<img" not in stats  # no empty plots
    endpoints = admin.get("/admin/endpoints").text
    assert "tagloop endpoints create NAME CLASSIFIER" in empty_state(endpoints, "no-endpoints")
    assert "create one above" in empty_state(admin.get("/admin/keys").text, "no-keys")
