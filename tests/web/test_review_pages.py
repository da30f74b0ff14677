"""The review and moderate pages through the app: fragments, keys, blind answers, escaping,
refused answers, the time spent, the A2I task UI hook."""

from __future__ import annotations

import re

from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask, Queue, TaskStatus
from tagloop.storage.repositories import ClassifierRepository
from tagloop.web.review import LABEL_KEYS, choices_of

from .conftest import csrf_of

HX = {"HX-Request": "true"}
LABELS = ("HARDWARE", "NETWORK", "BILLING")


def new_task(text: str = "my wifi is down", **fields) -> NewTask:
    values = {"mode": Mode.MULTI_CLASS, "choices": LABELS, "reason": "low_confidence"}
    values["prediction"] = {"labels": ["NETWORK", "HARDWARE", "BILLING"], "scores": [0.5, 0.3, 0.2]}
    return NewTask(text=text, **(values | fields))


def shown_task(html: str) -> str | None:
    found = re.search(r'data-task="([^"]+)"', html)
    return found.group(1) if found else None


def test_labels_get_keys_1_to_9_then_letters_but_the_commands(web_app):
    assert LABEL_KEYS[:10] == tuple("123456789a") and "s" not in LABEL_KEYS and "u" not in LABEL_KEYS
    assert len(LABEL_KEYS) == 33
    review = web_app.state.tagloop.review
    labels = tuple(f"L{i:02}" for i in range(40))
    scored = {"labels": ["L39", "L05"], "scores": [0.7, 0.2]}
    (task_id,) = review.add_tasks([new_task(choices=labels, prediction=scored)])
    choices = choices_of(review.get(task_id))
    assert [c.label for c in choices[:3]] == ["L39", "L05", "L00"]  # the model's order first
    assert [(c.key, c.score, c.predicted) for c in choices[:2]] == [("1", 0.7, True), ("2", 0.2, False)]
    assert choices[32].key == "z" and choices[33].key is None  # the 34th label: a button, no key


def test_an_answer_swaps_in_the_next_task_and_records_the_time_spent(browser, web_app):
    review = web_app.state.tagloop.review
    first, second = review.add_tasks([new_task("first", priority=2), new_task("second", priority=1)])
    client = browser("ana")
    page = client.get("/review")
    assert shown_task(page.text) == first and 'data-testid="queue-size">2<' in page.text
    token = csrf_of(page.text)
    form = {"csrf": token, "task_id": first, "label": "BILLING", "seconds": "2.5"}
    fragment = client.post("/review/answer", data=form, headers=HX)
    assert fragment.status_code == 200 and fragment.text.startswith('<section id="task"')
    assert "<html" not in fragment.text and shown_task(fragment.text) == second
    assert fragment.headers["cache-control"] == "no-store"
    assert 'data-testid="mine-total">1<' in fragment.text
    (answer,) = review.get(first, with_answers=True).answers
    assert (answer.reviewer, answer.labels, answer.seconds, answer.accepted) == (
        "ana",
        ("BILLING",),
        2.5,
        False,
    )
    without_js = client.post(
        "/review/answer", data=form | {"task_id": second, "seconds": "nan"}, follow_redirects=False
    )
    assert (without_js.status_code, without_js.headers["location"]) == (303, "/review")
    (answer,) = review.get(second, with_answers=True).answers
    assert answer.seconds is not None and answer.seconds < 60  # not NaN: the lease's age instead


def test_refused_answers_are_said_above_the_next_task(browser, web_app):
    review = web_app.state.tagloop.review
    (mine,) = review.add_tasks([new_task("mine")])
    client = browser("ana")
    token = csrf_of(client.get("/review").text)
    bad_label = client.post(
        "/review/answer", data={"csrf": token, "task_id": mine, "label": "EVIL"}, headers=HX
    )
    assert "&#39;EVIL&#39; is not one of this task&#39;s labels" in bad_label.text
    assert shown_task(bad_label.text) == mine  # still theirs to answer
    other = browser("mo")
    stolen = other.post(
        "/review/answer",
        data={"csrf": csrf_of(other.get("/review").text), "task_id": mine, "label": "HARDWARE"},
        headers=HX,
    )
    assert "holds no lease" in stolen.text
    unknown = client.post(
        "/review/answer", data={"csrf": token, "task_id": "nope", "label": "HARDWARE"}, headers=HX
    )
    assert unknown.status_code == 200 and 'data-testid="notice"' in unknown.text
    assert client.post("/review/answer", data={"csrf": token}, headers=HX).status_code == 200  # no task id
    assert [a.reviewer for a in review.get(mine, with_answers=True).answers] == ["ana"]
    assert review.get(mine).answered == 0


def test_reviewers_answer_blind_and_texts_are_escaped(browser, web_app):
    review = web_app.state.tagloop.review
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    labels = ('A"><script>alert(1)</script>', "B")
    (task_id,) = review.add_tasks([new_task(hostile, required=2, choices=labels, prediction=None)])
    assert review.next_task("bob").id == task_id
    review.answer(task_id, "bob", labels=["B"])
    page = browser("ana").get("/review").text
    assert shown_task(page) == task_id
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert 'value="A&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert "bob" not in page  # another reviewer's answer is not shown


def test_undo_and_skip(browser, web_app):
    review = web_app.state.tagloop.review
    first, second = review.add_tasks([new_task("first", priority=2), new_task("second", priority=1)])
    client = browser("ana")
    token = csrf_of(client.get("/review").text)
    nothing = client.post("/review/undo", data={"csrf": token}, headers=HX)
    assert "nothing to undo" in nothing.text and shown_task(nothing.text) == first
    client.post("/review/answer", data={"csrf": token, "task_id": first, "label": "NETWORK"}, headers=HX)
    undone = client.post("/review/undo", data={"csrf": token}, headers=HX)
    assert shown_task(undone.text) == first and "withdrawn" in undone.text
    assert review.get(first).answered == 0
    skipped = client.post("/review/skip", data={"csrf": token, "task_id": first}, headers=HX)
    assert shown_task(skipped.text) == second
    assert client.post("/review/skip", data={"task_id": second}, headers=HX).status_code == 403  # no token


def test_the_moderator_page_shows_answers_and_feedback_and_decides(browser, web_app):
    review = web_app.state.tagloop.review
    feedback = {"correct": False, "labels": ["BILLING"], "comment": "an <b>invoice</b>"}
    (task_id,) = review.add_tasks(
        [new_task("refund", reason="feedback", queue=Queue.MODERATE, feedback=feedback)]
    )
    client = browser("mo")
    page = client.get("/moderate").text
    assert shown_task(page) == task_id
    assert "the prediction is wrong" in page and "an &lt;b&gt;invoice&lt;/b&gt;" in page
    assert 'data-command="u"' not in page  # a decision is final: no undo here
    assert re.search(
        r'value="BILLING"[^>]*>\s*<kbd>3</kbd><span class="name">BILLING</span>\s*<span class="tag"', page
    )
    decided = client.post(
        "/moderate/answer", data={"csrf": csrf_of(page), "task_id": task_id, "label": "BILLING"}, headers=HX
    )
    assert 'data-testid="empty"' in decided.text
    final = review.get(task_id)
    assert (final.status, final.final_labels, final.decided_by) == (TaskStatus.COMPLETED, ("BILLING",), "mo")


def test_a_task_ui_renders_in_an_iframe_of_the_page(browser, web_app):
    review = web_app.state.tagloop.review
    review.add_tasks([new_task("a loop", flow_definition_id=None, loop_name="loop-1", reason="a2i")])
    web_app.state.web_task_ui = lambda tagloop, task: (
        f"/review/tasks/{task.id}/ui" if task.loop_name else None
    )
    page = browser("ana").get("/review")
    task_id = shown_task(page.text)
    assert f'<iframe class="task-ui" src="/review/tasks/{task_id}/ui"' in page.text
    assert 'id="answer-form"' not in page.text  # the template's own form answers
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    after = browser("ana").get("/review/next")  # what the page fetches once the task UI answered
    assert after.text.startswith('<section id="task"') and after.headers["cache-control"] == "no-store"


def test_an_empty_queue_looks_again_by_itself(browser):
    for name, queue in (("ana", "review"), ("mo", "moderate")):
        fragment = browser(name).get(f"/{queue}/next")
        assert 'data-testid="empty"' in fragment.text
        assert f'hx-get="/{queue}/next" hx-trigger="every 15s"' in fragment.text
    assert browser("ana").get("/moderate/next").status_code == 403


def test_the_agreement_page_is_for_moderators(browser, web_app):
    tagloop = web_app.state.tagloop
    with tagloop.database.transaction() as session:
        desk = ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id
    review = tagloop.review
    for text, (first, second) in (("a", ("NETWORK", "NETWORK")), ("b", ("HARDWARE", "BILLING"))):
        (task_id,) = review.add_tasks([new_task(text, required=2, classifier_id=desk)])
        for reviewer, label in (("bob", first), ("carl", second)):
            assert review.next_task(reviewer).id == task_id
            review.answer(task_id, reviewer, labels=[label])
    assert browser("ana").get("/moderate/agreement").status_code == 403
    page = browser("mo").get("/moderate/agreement?classifier=desk")
    assert page.status_code == 200 and 'data-testid="agreement"' in page.text
    assert "<td>0.500</td>" in page.text  # one answer pair of two agrees
    assert "bob" in page.text and "carl" in page.text
    unknown = browser("mo").get("/moderate/agreement?classifier=<nope>")
    assert unknown.status_code == 200 and "&lt;nope&gt;" not in unknown.text  # the first one instead


def test_a_moderator_skips_within_the_page(browser, web_app):
    """The moderate queue holds no leases: the page carries the moderator's skips."""
    review = web_app.state.tagloop.review
    first, second = review.add_tasks(
        [
            new_task("first", queue=Queue.MODERATE, priority=2),
            new_task("second", queue=Queue.MODERATE, priority=1),
        ]
    )
    client = browser("mo")
    page = client.get("/moderate").text
    token = csrf_of(page)
    assert shown_task(page) == first
    skipped = client.post("/moderate/skip", data={"csrf": token, "task_id": first}, headers=HX).text
    assert shown_task(skipped) == second and f'name="skipped" value="{first}"' in skipped
    again = client.post(
        "/moderate/skip", data={"csrf": token, "task_id": second, "skipped": first}, headers=HX
    )
    assert shown_task(again.text) == first  # every one skipped: from the start again
    decided = client.post(
        "/moderate/answer",
        data={"csrf": token, "task_id": second, "label": "EMAIL", "skipped": first},
        headers=HX,
    )
    assert shown_task(decided.text) == second  # still open, and the page remembers the skip
    assert review.get(second).final_labels is None  # EMAIL is not one of its labels: said, not decided
    assert "is not one of this task" in decided.text
