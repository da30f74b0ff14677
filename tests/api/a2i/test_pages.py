"""The pages reviewers answer A2I task templates on: the sandboxed, CSP-locked frame of a
rendered template, the page embedding it, tagloop's crowd elements, and who may see them
(a reviewer signed in to the web UI; its POSTs carry the session's CSRF token). Browser tests
drive Debian's chromium through Playwright (``chromium``: tests/conftest.py)."""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.web.conftest import ARTIFACTS, FAST, PASSWORD, log_in

from tagloop.web.security import SESSION_COOKIE

META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')

ROWS_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <short-instructions>Choose the team for every ticket.</short-instructions>
  <table>
    <tr><th>Ticket</th><th>Model says</th><th>Team</th></tr>
    {% for row in task.input.rows %}
    <tr>
      <td class="text">{{ row.text }}</td>
      <td>{{ row.predicted }}</td>
      <td>
        <select name="team-{{ forloop.index0 }}" required>
          <option value="">choose…</option>
          {% for label in task.input.labels %}<option value="{{ label }}">{{ label }}</option>{% endfor %}
        </select>
      </td>
    </tr>
    {% endfor %}
  </table>
  <label>Comment <input name="comment"></label>
  <img src="http://127.0.0.1:{{ task.input.leak_port }}/img.png">
  <link rel="stylesheet" href="http://127.0.0.1:{{ task.input.leak_port }}/style.css">
  <script src="http://127.0.0.1:{{ task.input.leak_port }}/script.js"></script>
  <script>
    fetch("http://127.0.0.1:{{ task.input.leak_port }}/fetch").catch(function () {});
    fetch("/human-loops").catch(function () {});
    document.body.dataset.inline = "ran";
  </script>
</crowd-form>"""

ROWS = [
    {"text": "the printer on floor 3 is jammed", "predicted": "HARDWARE"},
    {"text": "<script>alert('x')</script> refund my invoice", "predicted": "BILLING"},
    {
        "text": "vpn keeps dropping <img src=x onerror=\"document.body.dataset.pwned='yes'\">",
        "predicted": "HARDWARE",
    },
]


@contextmanager
def leak_server() -> Iterator[tuple[int, list[str]]]:
    """A second local web server: any request a task page makes to it is recorded."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def server(a2i):
    """The module's server with a flow whose template puts many tickets in one loop, and web
    users: ana and bo (reviewers), ad (admin)."""
    a2i.tagloop.human_loops.create_task_ui("rows-ui", ROWS_TEMPLATE)
    a2i.flow("rows", "rows-ui", description="One team per ticket")
    users = a2i.tagloop.users
    users.hasher = FAST
    for name, role in (("ana", "reviewer"), ("bo", "reviewer"), ("ad", "admin")):
        users.create(name, role, PASSWORD)
    return a2i


@pytest.fixture(scope="module")
def signed_in(server) -> Iterator[Any]:
    """``signed_in(name)``: an HTTP client of the live server, logged in at /login as ``name``
    (one per name for the module)."""
    clients: dict[str, httpx.Client] = {}

    def make(name: str) -> httpx.Client:
        if name not in clients:
            client = httpx.Client(base_url=server.url)
            assert log_in(client, name).status_code == 303
            clients[name] = client
        return clients[name]

    yield make
    for client in clients.values():
        client.close()


def csrf_token(client: httpx.Client, task_id: str) -> str:
    """The session's CSRF token, as the loop's page hands it to its script."""
    page = client.get(f"/review/loops/{task_id}")
    found = META_CSRF.search(page.text)
    assert found, page.text[:1000]
    return found.group(1)


def lease(server: Any, reviewer: str, task_id: str) -> None:
    """What the review page does, until it hands out ``task_id``: lease the next task (others
    are skipped, for this reviewer only)."""
    review = server.tagloop.review
    for _ in range(50):
        task = review.next_task(reviewer)
        assert task is not None
        if task.id == task_id:
            return
        review.skip(task.id, reviewer)
    raise AssertionError(f"{task_id} was never handed out to {reviewer}")


def test_the_frame_is_rendered_escaped_and_locked_down(server, signed_in):
    ana = signed_in("ana")
    task_id = server.loop_row("rows", {"rows": ROWS, "labels": ["HARDWARE", "BILLING"], "leak_port": 9})
    response = ana.get(f"/review/loops/{task_id}/ui")
    assert response.status_code == 200, response.text
    policy = response.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "connect-src 'none'",
        "form-action 'none'",
        "sandbox allow-scripts",
    ):
        assert directive in policy
    assert "allow-same-origin" not in policy
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; refund my invoice" in response.text
    assert '<select name="team-2" required>' in response.text
    assert "assets.crowd.aws" not in response.text  # tagloop's crowd elements stand in for AWS's
    page = ana.get(f"/review/loops/{task_id}")
    assert page.status_code == 200 and 'sandbox="allow-scripts allow-forms"' in page.text
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert META_CSRF.search(page.text)  # the page's script sends the session's token


def test_who_may_see_a_task_frame(server, signed_in):
    """Not signed in (whatever API key is sent): the login page. A reviewer or a higher role:
    the frame."""
    task_id = server.loop_row("rows", {"rows": [], "labels": [], "leak_port": 9})
    url = f"{server.url}/review/loops/{task_id}/ui"
    assert refused(httpx.get(url))
    for scope in ("classify", "review", "admin"):  # API keys are not web sessions
        assert refused(httpx.get(url, headers=server.bearer(scope))), scope
    for name in ("ana", "ad"):
        assert signed_in(name).get(url).status_code == 200, name
    assert signed_in("ana").get("/review/loops/nope/ui").status_code == 404
    answer = httpx.post(f"{server.url}/review/loops/{task_id}/answer", json={"answerContent": {}})
    assert refused(answer)
    server.flow("plain")
    plain = server.loop_row("plain", {"taskObject": "shown on tagloop's own page"})
    for path in (f"/review/loops/{plain}", f"/review/loops/{plain}/ui"):
        response = signed_in("ana").get(path)
        assert response.status_code == 404 and "review page" in response.text


def test_crowd_elements_are_served_locally(server):
    for name, kind in (
        ("crowd-elements.js", "javascript"),
        ("crowd-elements.css", "css"),
        ("a2i-host.js", "javascript"),
    ):
        response = httpx.get(f"{server.url}/a2i/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert httpx.get(f"{server.url}/a2i/static/..%2Fpages.py").status_code == 404
    assert httpx.get(f"{server.url}/a2i/static/pages.py").status_code == 404


def refused(response: httpx.Response) -> bool:
    """Refused for want of a signed-in reviewer: 401/403, or the way to the login page."""
    if response.status_code == 303:
        return response.headers["location"].startswith("/login")
    return response.status_code in (401, 403)


@pytest.fixture
def page(chromium, server, signed_in) -> Iterator[Any]:
    """A page of its own (fresh context) signed in as ana (her session's cookie)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    token = signed_in("ana").cookies[SESSION_COOKIE]
    context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": server.url}])
    yield context.new_page()
    context.close()


def test_a_template_cannot_reach_the_network_and_its_rows_become_answer_content(server, page):
    """Attacker: a template (or an input it renders) loading remote images, styles, scripts or
    calling APIs gets nothing through; the rows of a many-document template come back one
    answer member per row."""
    with leak_server() as (leak_port, hits):
        content = {"rows": ROWS, "labels": ["HARDWARE", "BILLING", "NETWORK"], "leak_port": leak_port}
        task_id = server.loop_row("rows", content)
        page.goto(f"{server.url}/review/loops/{task_id}")
        frame = page.frame_locator("#a2i-task")
        frame.locator("select[name=team-0]").wait_for()
        frame.locator("select[name=team-0]").select_option("HARDWARE")
        frame.locator("select[name=team-1]").select_option("BILLING")
        frame.locator("select[name=team-2]").select_option("NETWORK")
        frame.locator("input[name=comment]").fill("row 2 was odd")
        answer = frame.locator("crowd-form").evaluate("form => form.answerContent")
        inline = frame.locator("body").evaluate("body => body.dataset.inline || ''")
        pwned = frame.locator("body").evaluate("body => body.dataset.pwned || ''")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "a2i-rows.png"), full_page=True)
    assert answer == {
        "team-0": "HARDWARE",
        "team-1": "BILLING",
        "team-2": "NETWORK",
        "comment": "row 2 was odd",
    }
    assert inline == "ran"  # the template's own inline script runs, inside its sandbox
    assert pwned == ""  # markup in the loop's input is shown as text, never run
    assert hits == []  # no image, style, script or fetch reached another host


CLASSIFIER_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier name="category" categories="{{ task.input.labels | to_json }}"
                    header="Which team handles it?">
    <classification-target>{{ task.input.taskObject }}</classification-target>
    <full-instructions header="How to choose"><p>Pick the team that fixes it.</p></full-instructions>
    <short-instructions>Pick one team.</short-instructions>
  </crowd-classifier>
</crowd-form>"""


def test_a_crowd_classifier_is_answered_with_the_keyboard(server, page):
    """A2I's text-classification sample template: number keys choose, Enter submits, and the
    answer is what crowd-classifier submits on A2I: {"category": {"label": ...}}."""
    loops = server.tagloop.human_loops
    loops.create_task_ui("classifier-ui", CLASSIFIER_TEMPLATE)
    server.flow("classify-one", "classifier-ui", "Route a ticket")
    runtime = server.client("sagemaker-a2i-runtime", "classify")
    content = {
        "taskObject": "please refund the duplicate charge",
        "labels": ["HARDWARE", "BILLING", "NETWORK"],
    }
    runtime.start_human_loop(
        HumanLoopName="one-ticket",
        FlowDefinitionArn="arn:aws:sagemaker:us-east-1:123456789012:flow-definition/classify-one",
        HumanLoopInput={"InputContent": json.dumps(content)},
    )
    task_id = server.loop_task("one-ticket")
    lease(server, "ana", task_id)
    page.goto(f"{server.url}/review/loops/{task_id}")
    frame = page.frame_locator("#a2i-task")
    frame.locator(".crowd-category").first.wait_for()
    labels = frame.locator(".crowd-category span").all_inner_texts()
    target = frame.locator(".crowd-classification-target").inner_text()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'a2i-task'")
    page.keyboard.press("2")  # the frame has the keyboard: no click needed
    chosen = frame.locator("crowd-form").evaluate("form => form.answerContent")
    page.keyboard.press("Enter")
    page.locator("#a2i-status", has_text="Answer saved.").wait_for()
    page.screenshot(path=str(ARTIFACTS / "a2i-classifier.png"), full_page=True)
    assert labels == ["HARDWARE", "BILLING", "NETWORK"] and target == content["taskObject"]
    assert chosen == {"category": {"label": "BILLING"}}
    described = runtime.describe_human_loop(HumanLoopName="one-ticket")
    output = json.loads(Path(described["HumanLoopOutput"]["OutputS3Uri"].removeprefix("file://")).read_text())
    (human,) = output["humanAnswers"]
    assert human["answerContent"] == {"category": {"label": "BILLING"}} and human["workerId"] == "ana"


def test_answers_are_checked(server, signed_in):
    """Attacker: answering a task one does not hold, twice, or with something that is not a
    template's answer is refused; so is a body over the answer limit."""
    ana = signed_in("ana")
    task_id = server.loop_row("rows", {"rows": [], "labels": [], "leak_port": 9})
    headers = {"X-CSRF-Token": csrf_token(ana, task_id)}
    url = f"/review/loops/{task_id}/answer"
    not_held = ana.post(url, json={"answerContent": {"team-0": "X"}}, headers=headers)
    assert not_held.status_code == 409  # no lease on it
    for body in ({"answerContent": "text"}, {"answerContent": [1]}, {}, {"answerContent": {}, "seconds": -1}):
        assert ana.post(url, json=body, headers=headers).status_code == 400, body
    broken = ana.post(url, content=b"{not json", headers=headers | {"Content-Type": "application/json"})
    assert broken.status_code == 400
    huge = ana.post(url, json={"answerContent": {"x": "y" * (3 * 1024 * 1024)}}, headers=headers)
    assert huge.status_code in (400, 413)
    other = ana.post("/review/loops/not-a-task/answer", json={"answerContent": {}}, headers=headers)
    assert other.status_code == 404
    lease(server, "ana", task_id)
    assert ana.post(url, json={"answerContent": {"team-0": "X"}}, headers=headers).status_code == 200
    again = ana.post(url, json={"answerContent": {"team-0": "Y"}}, headers=headers)
    assert again.status_code == 409  # answered already


def test_an_answer_needs_the_sessions_csrf_token_and_the_task(server, signed_in):
    """Attacker: a page of another site, or a script without the session's CSRF token, cannot
    answer for the signed-in reviewer (403 before anything is stored); another reviewer's
    session, with its own valid token, cannot answer a task it does not hold (409)."""
    ana, bo = signed_in("ana"), signed_in("bo")
    task_id = server.loop_row("rows", {"rows": [], "labels": [], "leak_port": 9})
    lease(server, "ana", task_id)
    url = f"/review/loops/{task_id}/answer"
    body = {"answerContent": {"team-0": "BILLING"}}
    token = csrf_token(ana, task_id)
    assert ana.post(url, json=body).status_code == 403  # no token
    assert ana.post(url, json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert ana.post(url, json=body, headers={"X-CSRF-Token": csrf_token(bo, task_id)}).status_code == 403
    assert ana.post(url, data={"csrf": "wrong"}).status_code == 403  # the form field, wrong
    cross = {"X-CSRF-Token": token, "Origin": "https://evil.example"}
    assert ana.post(url, json=body, headers=cross).status_code == 403
    fetched = {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}
    assert ana.post(url, json=body, headers=fetched).status_code == 403
    theirs = bo.post(url, json=body, headers={"X-CSRF-Token": csrf_token(bo, task_id)})
    assert theirs.status_code == 409  # bo holds no lease on ana's task
    task = server.tagloop.review.get(task_id, with_answers=True)
    assert task.answered == 0 and str(task.status) == "InProgress"
    assert ana.post(url, json=body, headers={"X-CSRF-Token": token}).status_code == 200


def test_the_web_review_page_hook(server):
    """``task_ui_url`` (the web UI's ``add_web(app, task_ui=...)``): the page of a loop whose
    flow has a template; None for loops on tagloop's own page and for other tasks."""
    from types import SimpleNamespace

    from tagloop.api.a2i import task_ui_url

    templated = server.loop_row("rows", {"rows": [], "labels": [], "leak_port": 9})
    assert (
        task_ui_url(server.tagloop, SimpleNamespace(id=templated, loop_name="x"))
        == f"/review/loops/{templated}"
    )
    assert task_ui_url(server.tagloop, SimpleNamespace(id="routing-task", loop_name=None)) is None
    assert task_ui_url(server.tagloop, SimpleNamespace(id="gone", loop_name="gone")) is None
