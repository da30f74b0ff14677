"""The web UI in a real browser (Debian's Chromium through Playwright) against a live server:
a reviewer labels with the keyboard only, a moderator decides a tie and an end user's feedback.
Every request is watched: none may leave 127.0.0.1, and the pages log no console error."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tagloop.api.server import create_app
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask, Queue, TaskStatus
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.repositories import ClassifierRepository

from .conftest import FAST, PASSWORD, Visit

LABELS = ("HARDWARE", "NETWORK", "SOFTWARE", "BILLING", "ACCESS", "EMAIL")
LONG = " ".join(["The VPN drops every few minutes when I work from home, and then Outlook asks again."] * 30)


def task(text: str, best: int, priority: float, **fields) -> NewTask:
    """A multi-class task whose model put LABELS[best] first."""
    order = [LABELS[best], *(label for label in LABELS if label != LABELS[best])]
    scores = [0.46, 0.21, 0.12, 0.09, 0.07, 0.05]
    values = {"mode": Mode.MULTI_CLASS, "choices": LABELS, "reason": "low_confidence", "priority": priority}
    values |= {"prediction": {"labels": order, "scores": scores}, "uncertainty": 0.54}
    return NewTask(text=text, **(values | fields))


@dataclass
class Live:
    base: str
    tagloop: object
    tie: str
    feedback: str
    skipped: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def live(tmp_path_factory, serve_in_thread) -> Iterator[Live]:
    """A live server with a reviewer (ana), a moderator (mo), six single-label tasks, a
    multi-label one, a tie between two other reviewers and an end user's feedback."""
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("web") / "data"), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.users.hasher = FAST
    tagloop.users.create("ana", "reviewer", PASSWORD)
    tagloop.users.create("mo", "moderator", PASSWORD)
    review = tagloop.review
    with tagloop.database.transaction() as session:  # the classifier the tasks belong to (untrained)
        desk = ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id
    (tie,) = review.add_tasks(
        [
            task(
                "printer or network? the office printer is unreachable",
                0,
                100,
                required=2,
                classifier_id=desk,
            )
        ]
    )
    for reviewer, label in (("bob", "HARDWARE"), ("carl", "NETWORK")):
        assert review.next_task(reviewer).id == tie
        review.answer(tie, reviewer, labels=[label], seconds=3.0)
    assert review.get(tie).queue is Queue.MODERATE  # a tie: one vote each
    texts = [
        LONG,
        "my laptop screen flickers",
        "I was charged twice for the licence",
        "cannot log in to the HR portal",
        "Excel crashes when I open the budget",
        "mailbox full, cannot send",
    ]
    review.add_tasks([task(text, i % len(LABELS), 50 - i) for i, text in enumerate(texts)])
    multi = task("new starter needs a laptop and an account", 4, 1, mode=Mode.MULTI_LABEL)
    multi = NewTask(
        **{**multi.__dict__, "prediction": {"labels": ["ACCESS", "HARDWARE"], "scores": [0.8, 0.6]}}
    )
    review.add_tasks([multi])
    feedback = {
        "correct": False,
        "labels": ["BILLING"],
        "comment": "this is about an invoice",
        "source": "api",
    }
    (complaint,) = review.add_tasks(
        [
            task(
                "please refund the duplicate invoice",
                1,
                0,
                reason="feedback",
                queue=Queue.MODERATE,
                feedback=feedback,
            )
        ]
    )
    with serve_in_thread(app) as port:
        yield Live(f"http://127.0.0.1:{port}", tagloop, tie, complaint)
    tagloop.close()


def test_a_reviewer_labels_with_the_keyboard_only(chromium, live):
    visit = Visit(chromium, live.base)
    visit.log_in("ana")
    page = visit.page
    assert page.text_content('[data-testid="user"]') == "ana"
    assert page.text_content('[data-testid="queue-size"]') == "7"
    assert page.text_content('[data-testid="text"]').startswith("The VPN drops")  # the long one first
    visit.screenshot("review-1280")
    expected: dict[str, list[str]] = {}
    for key in ("1", "2", "Enter", "3", "1"):
        shown = visit.task_id()
        accept = "#answer-form [data-accept]" if key == "Enter" else f'#answer-form [data-key="{key}"]'
        expected[shown] = [visit.value_of(accept)]
        visit.press(key)
        assert visit.task_id() != shown
    assert page.text_content('[data-testid="mine-total"]') == "5"
    last = shown
    visit.press("u")  # undo: the last answer's task comes back
    assert visit.task_id() == last and "withdrawn" in page.text_content('[data-testid="notice"]')
    assert page.text_content('[data-testid="mine-total"]') == "4"
    expected[last] = [visit.value_of('#answer-form [data-key="2"]')]
    visit.press("2")
    visit.press("Control+z")  # Ctrl+Z undoes as U does
    assert visit.task_id() == last
    expected[last] = [visit.value_of('#answer-form [data-key="4"]')]
    visit.press("4")
    skipped = visit.task_id()
    visit.press("s")
    assert visit.task_id() not in (skipped, None)
    page.keyboard.press("?")
    assert page.is_visible("#keys")
    visit.screenshot("keys-1280")
    page.keyboard.press("Escape")
    assert not page.is_visible("#keys")
    assert page.get_attribute("#task", "data-mode") == "multi"  # the multi-label task
    multi = visit.task_id()
    assert page.eval_on_selector_all("input[type=checkbox]:checked", "boxes => boxes.map(b => b.value)") == [
        "ACCESS",
        "HARDWARE",
    ]  # the model's labels, pre-selected
    page.keyboard.press("2")  # HARDWARE off
    page.keyboard.press("3")  # the third label on
    chosen = page.eval_on_selector_all("input[type=checkbox]:checked", "boxes => boxes.map(b => b.value)")
    assert len(chosen) == 2 and "HARDWARE" not in chosen
    visit.screenshot("review-multi-1280")
    visit.press("Enter")
    expected[multi] = chosen
    assert visit.task_id() == skipped  # skipped tasks come back after every other
    mobile = Visit(chromium, live.base, width=390, height=844)
    mobile.log_in("ana")  # the same lease: the same task
    assert mobile.task_id() == skipped
    mobile.screenshot("review-390")
    mobile.close()
    live.skipped.append(skipped)

    review = live.tagloop.review
    for task_id, labels in expected.items():
        answers = [a for a in review.get(task_id, with_answers=True).answers if a.reviewer == "ana"]
        assert [(a.status, list(a.labels)) for a in answers] == [("answered", labels)], task_id
        assert 0 < answers[0].seconds < 600  # measured by the page
        assert review.get(task_id).status is TaskStatus.COMPLETED
    assert [a.status for a in review.get(skipped, with_answers=True).answers] == ["leased"]  # back to ana
    assert review.stats("ana").mine_total == 6
    visit.close()


def test_a_reviewer_cannot_reach_moderator_or_admin_pages(chromium, live):
    visit = Visit(chromium, live.base)
    visit.log_in("ana")
    assert 'href="/moderate"' not in visit.page.content()
    for path in ("/moderate", "/admin"):
        assert visit.context.request.get(path, max_redirects=0).status == 403
    csrf = visit.page.get_attribute('input[name="csrf"]', "value")
    refused = visit.context.request.post(
        "/moderate/answer", form={"csrf": csrf, "task_id": live.tie, "label": "EMAIL"}
    )
    assert refused.status == 403
    assert live.tagloop.review.get(live.tie).status is TaskStatus.IN_PROGRESS
    without_token = visit.context.request.post(
        "/review/skip", form={"task_id": live.skipped[0] if live.skipped else "x"}
    )
    assert without_token.status == 403
    visit.close()


def test_a_moderator_decides_a_tie_and_a_feedback_task(chromium, live):
    visit = Visit(chromium, live.base)
    visit.log_in("mo")
    page = visit.page
    page.goto("/moderate")
    assert page.text_content('[data-testid="queue-size"]') == "2"
    first = visit.task_id()
    visit.press("s")  # skipped on this page: the other task
    assert visit.task_id() not in (first, None)
    decided = {}
    for _ in range(2):
        shown = visit.task_id()
        if shown == live.tie:
            answers = page.text_content('[data-testid="answers"]')
            assert "bob: HARDWARE" in answers and "carl: NETWORK" in answers
            visit.screenshot("moderate-tie-1280")
            decided[shown] = [visit.value_of('#answer-form [data-key="2"]')]
            visit.press("2")
        else:
            assert shown == live.feedback
            assert "this is about an invoice" in page.text_content('[data-testid="feedback"]')
            assert "BILLING" in page.text_content('[data-testid="feedback"]')
            visit.screenshot("moderate-feedback-1280")
            decided[shown] = [visit.value_of("#answer-form [data-accept]")]
            visit.press("Enter")
    assert page.is_visible('[data-testid="empty"]')
    assert "u" not in [page.get_attribute(b, "data-command") for b in ("[data-command]",)]  # no undo here
    review = live.tagloop.review
    for task_id, labels in decided.items():
        final = review.get(task_id)
        assert (final.status, list(final.final_labels), final.decided_by) == (
            TaskStatus.COMPLETED,
            labels,
            "mo",
        )
    page.click("text=Agreement")
    page.wait_for_selector('[data-testid="agreement"]')
    assert "bob" in page.text_content("main") and "carl" in page.text_content("main")
    visit.screenshot("agreement-1280")
    visit.close()


def test_the_login_page_on_a_phone(chromium, live):
    visit = Visit(chromium, live.base, width=390, height=844)
    visit.page.goto("/login")
    visit.page.fill("#name", "ana")
    visit.page.fill("#password", "wrong horse")
    visit.page.keyboard.press("Enter")
    visit.page.wait_for_selector('[data-testid="login-error"]')
    visit.screenshot("login-390")
    visit.errors = [e for e in visit.errors if "401" not in e]  # the refused login's own status
    visit.close()


@pytest.fixture(scope="module")
def routed(tmp_path_factory, serve_in_thread, tickets) -> Iterator[Live]:
    """A live server with an admin (ad) and the endpoint ``desk`` (the demo tickets)."""
    folder = tmp_path_factory.mktemp("routing")
    data = folder / "tickets.csv"
    with open(data, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    app = create_app(Settings(data_dir=folder / "data"), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.users.hasher = FAST
    tagloop.users.create("ad", "admin", PASSWORD)
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", "v1")["job_id"])
    tagloop.endpoints.set_routing("desk", {"threshold": 0.5, "labels": ["BILLING"]})
    with serve_in_thread(app) as port:
        yield Live(f"http://127.0.0.1:{port}", tagloop, "", "")
    tagloop.close()


def test_an_admin_changes_the_routing_of_an_endpoint(chromium, routed):
    visit = Visit(chromium, routed.base)
    visit.log_in("ad")
    page = visit.page
    page.click("nav >> text=Routing")
    page.wait_for_selector('[data-endpoint="desk"]')
    assert page.text_content('[data-endpoint="desk"] [data-setting="threshold"]') == "below 0.5"
    visit.screenshot("routing-list-1280")
    page.click('a:has-text("Edit routing of desk")')
    page.wait_for_selector('[data-testid="routing-form"]')
    page.fill("#threshold", "0.65")
    page.fill("#audit", "0.1")
    page.check('input[name="label"][value="NETWORK"]')
    page.click('[data-testid="save"]')
    page.wait_for_selector('[data-testid="notice"]')
    assert page.text_content('[data-setting="threshold"]') == "below 0.65"
    assert page.text_content('[data-setting="audit"]') == "0.1 (10 %)"
    assert page.text_content('[data-setting="labels"]') == "BILLING, NETWORK"
    assert page.input_value("#threshold") == "0.65" and page.input_value("#audit") == "0.1"
    stored = routed.tagloop.endpoints.routing("desk")
    assert (stored["threshold"], stored["audit"], stored["labels"]) == (0.65, 0.1, ["BILLING", "NETWORK"])
    visit.screenshot("routing-1280")
    page.fill("#required", "5")
    page.click('[data-testid="save"]')
    page.wait_for_selector('[data-error="required"]')
    assert page.text_content('[data-error="required"]') == "required: 5 is not from 1 to 3"
    visit.screenshot("routing-error-1280")
    assert routed.tagloop.endpoints.routing("desk") == stored
    visit.errors = [e for e in visit.errors if "400" not in e]  # the refused form's own status
    visit.close()
    mobile = Visit(chromium, routed.base, width=390, height=844)
    mobile.log_in("ad")
    mobile.page.goto("/admin/routing")
    mobile.screenshot("routing-list-390")
    mobile.page.goto("/admin/routing/desk")
    assert mobile.page.input_value("#threshold") == "0.65"
    mobile.screenshot("routing-390")
    overflow = mobile.page.evaluate("() => document.documentElement.scrollWidth")
    assert overflow <= 390  # nothing wider than the phone
    mobile.close()
