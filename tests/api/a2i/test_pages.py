"""The pages reviewers answer A2I task templates on: the sandboxed, CSP-locked frame of a
rendered template, the page embedding it, tagloop's crowd elements, and who may see them.
Browser tests drive Debian's chromium through Playwright."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / ".screenshots"

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
    """The module's server with a flow whose template puts many tickets in one loop."""
    a2i.tagloop.human_loops.create_task_ui("rows-ui", ROWS_TEMPLATE)
    a2i.flow("rows", "rows-ui", description="One team per ticket")
    return a2i


def test_the_frame_is_rendered_escaped_and_locked_down(server):
    task_id = server.loop_row("rows", {"rows": ROWS, "labels": ["HARDWARE", "BILLING"], "leak_port": 9})
    response = httpx.get(f"{server.url}/review/loops/{task_id}/ui", headers=server.bearer("review"))
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
    page = httpx.get(f"{server.url}/review/loops/{task_id}", headers=server.bearer("review"))
    assert page.status_code == 200 and 'sandbox="allow-scripts allow-forms"' in page.text
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]


def test_who_may_see_a_task_frame(server):
    task_id = server.loop_row("rows", {"rows": [], "labels": [], "leak_port": 9})
    url = f"{server.url}/review/loops/{task_id}/ui"
    assert refused(httpx.get(url)) and refused(httpx.get(url, headers=server.bearer("classify")))
    assert httpx.get(url, headers=server.bearer("admin")).status_code == 200
    unknown = httpx.get(f"{server.url}/review/loops/nope/ui", headers=server.bearer("review"))
    assert unknown.status_code == 404
    answer = httpx.post(f"{server.url}/review/loops/{task_id}/answer", json={"answerContent": {}})
    assert refused(answer)
    server.flow("plain")
    plain = server.loop_row("plain", {"taskObject": "shown on tagloop's own page"})
    for path in (f"/review/loops/{plain}", f"/review/loops/{plain}/ui"):
        response = httpx.get(server.url + path, headers=server.bearer("review"))
        assert response.status_code == 404 and "review page" in response.json()["error"]["message"]


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
    """Refused for want of a reviewer: 401/403, or (once the web UI answers /review/* for
    people in browsers) the way to its login page."""
    if response.status_code == 303:
        return response.headers["location"].startswith("/login")
    return response.status_code in (401, 403)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium for the module's browser tests (Debian's; never a downloaded one)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, server) -> Iterator[Any]:
    """A page of its own (fresh context) whose requests carry the review key."""
    context = chromium.new_context(extra_http_headers=server.bearer("review"))
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
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "a2i-rows.png"), full_page=True)
    assert answer == {
        "team-0": "HARDWARE",
        "team-1": "BILLING",
        "team-2": "NETWORK",
        "comment": "row 2 was odd",
    }
    assert inline == "ran"  # the template's own inline script runs, inside its sandbox
    assert pwned == ""  # markup in the loop's input is shown as text, never run
    assert hits == []  # no image, style, script or fetch reached another host


def test_a_reviewer_answers_a_many_document_loop_in_the_browser(server, page):
    """A loop started with boto3 on a flow whose template shows several tickets: the reviewer
    answers every row in the browser, and output.json holds one answer member per row."""
    flow_arn = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/rows"
    runtime = server.client("sagemaker-a2i-runtime", "classify")
    content = {"rows": ROWS, "labels": ["HARDWARE", "BILLING", "NETWORK"], "leak_port": 9}
    runtime.start_human_loop(
        HumanLoopName="Rows-Loop-1",
        FlowDefinitionArn=flow_arn,
        HumanLoopInput={"InputContent": json.dumps(content)},
    )
    reviewer = server.keys["review"]["access_key_id"]  # who a review key answers as
    task = server.tagloop.review.next_task(reviewer)  # what the review page does: lease the next task
    assert task is not None and task.loop_name == "Rows-Loop-1"
    page.goto(f"{server.url}/review/loops/{task.id}")
    frame = page.frame_locator("#a2i-task")
    frame.locator("select[name=team-2]").wait_for()
    frame.locator("button.crowd-submit").click()  # rows not chosen yet: the browser refuses
    for index, team in enumerate(["BILLING", "BILLING", "NETWORK"]):
        frame.locator(f"select[name=team-{index}]").select_option(team)
    frame.locator("button.crowd-submit").click()
    page.locator("#a2i-status", has_text="Answer saved.").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "a2i-rows-answered.png"), full_page=True)
    described = runtime.describe_human_loop(HumanLoopName="Rows-Loop-1")
    assert described["HumanLoopStatus"] == "Completed"
    output = json.loads(Path(described["HumanLoopOutput"]["OutputS3Uri"].removeprefix("file://")).read_text())
    (human,) = output["humanAnswers"]
    assert human["answerContent"] == {
        "team-0": "BILLING",
        "team-1": "BILLING",
        "team-2": "NETWORK",
        "comment": "",
    }
    assert human["workerId"] == reviewer and human["timeSpentInSeconds"] >= 0
    assert output["inputContent"] == content and output["humanLoopName"] == "Rows-Loop-1"


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
    reviewer = server.keys["review"]["access_key_id"]
    task = server.tagloop.review.next_task(reviewer)
    assert task is not None and task.loop_name == "one-ticket"
    page.goto(f"{server.url}/review/loops/{task.id}")
    frame = page.frame_locator("#a2i-task")
    frame.locator(".crowd-category").first.wait_for()
    labels = frame.locator(".crowd-category span").all_inner_texts()
    target = frame.locator(".crowd-classification-target").inner_text()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'a2i-task'")
    page.keyboard.press("2")  # the frame has the keyboard: no click needed
    chosen = frame.locator("crowd-form").evaluate("form => form.answerContent")
    page.keyboard.press("Enter")
    page.locator("#a2i-status", has_text="Answer saved.").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "a2i-classifier.png"), full_page=True)
    assert labels == ["HARDWARE", "BILLING", "NETWORK"] and target == content["taskObject"]
    assert chosen == {"category": {"label": "BILLING"}}
    described = runtime.describe_human_loop(HumanLoopName="one-ticket")
    output = json.loads(Path(described["HumanLoopOutput"]["OutputS3Uri"].removeprefix("file://")).read_text())
    assert output["humanAnswers"][0]["answerContent"] == {"category": {"label": "BILLING"}}


def test_answers_are_checked(server):
    """Attacker: answering a task one does not hold, twice, or with something that is not a
    template's answer is refused; so is a body over the answer limit."""
    reviewer = server.bearer("review")
    task_id = server.loop_row("rows", {"rows": [], "labels": [], "leak_port": 9})
    url = f"{server.url}/review/loops/{task_id}/answer"
    not_held = httpx.post(url, json={"answerContent": {"team-0": "X"}}, headers=reviewer)
    assert not_held.status_code == 409  # no lease on it
    for body in ({"answerContent": "text"}, {"answerContent": [1]}, {}, {"answerContent": {}, "seconds": -1}):
        assert httpx.post(url, json=body, headers=reviewer).status_code == 400, body
    broken = httpx.post(url, content=b"{not json", headers=reviewer | {"Content-Type": "application/json"})
    assert broken.status_code == 400
    huge = httpx.post(url, json={"answerContent": {"x": "y" * (3 * 1024 * 1024)}}, headers=reviewer)
    assert huge.status_code in (400, 413)
    other = httpx.post(
        f"{server.url}/review/loops/not-a-task/answer", json={"answerContent": {}}, headers=reviewer
    )
    assert other.status_code == 404


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
