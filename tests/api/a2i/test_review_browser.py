"""The whole way of an A2I loop with a custom template, in a real browser (Debian's Chromium):
a loop started with boto3 on a flow whose Liquid template shows several tickets (one select
per row) is handed out on the web review page to a reviewer who logged in at /login, shown in
its iframe, answered there; the page moves on to the next task, and the loop's output.json in
the artifact store holds one answer per row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.web.conftest import FAST, PASSWORD, Visit

from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask

TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <short-instructions>Choose the team for every ticket.</short-instructions>
  <table>
    <tr><th>Ticket</th><th>Model says</th><th>Team</th></tr>
    {% for row in task.input.rows %}
    <tr>
      <td>{{ row.text }}</td>
      <td>{{ row.predicted }} ({{ row.score }})</td>
      <td>
        <select name="team-{{ forloop.index0 }}" required>
          <option value="">choose…</option>
          {% for label in task.input.labels %}<option value="{{ label }}">{{ label }}</option>{% endfor %}
        </select>
      </td>
    </tr>
    {% endfor %}
  </table>
</crowd-form>"""
LABELS = ["HARDWARE", "BILLING", "NETWORK"]
ROWS = [
    {"text": "the printer on floor 3 is jammed", "predicted": "HARDWARE", "score": 0.51},
    {"text": "I was charged twice for the licence <b>again</b>", "predicted": "HARDWARE", "score": 0.44},
    {"text": "vpn keeps dropping every few minutes", "predicted": "BILLING", "score": 0.38},
]
FLOW_ARN = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/ticket-rows"
NEXT_TEXT = "the next ticket: my mouse is broken"


@pytest.fixture(scope="module")
def desk(a2i) -> Any:
    """The module's live server: a reviewer (ana), a flow whose template shows many tickets in
    one loop, its output path outside what tagloop may write (so in the artifact store)."""
    a2i.tagloop.users.hasher = FAST
    a2i.tagloop.users.create("ana", "reviewer", PASSWORD)
    a2i.tagloop.human_loops.create_task_ui("ticket-rows-ui", TEMPLATE)
    a2i.flow("ticket-rows", "ticket-rows-ui", output_path="s3://someone-elses-bucket/a2i/")
    return a2i


def shown_in_full(page: Any) -> Any:
    """The template's frame in the review page, once both frames are sized to their content
    (no scrolling inside a box: the frames tell their heights)."""
    frame = page.frame_locator('[data-testid="task-ui"]').frame_locator("#a2i-task")
    frame.locator("select[name=team-2]").wait_for()
    page.wait_for_function(
        """() => {
            const outer = document.querySelector("iframe.task-ui");
            const inner = outer && outer.contentDocument && outer.contentDocument.getElementById("a2i-task");
            return Boolean(outer.style.height && inner && inner.style.height);
        }"""
    )
    return frame


def test_a_many_document_loop_is_answered_on_the_review_page(chromium, desk):
    runtime = desk.client("sagemaker-a2i-runtime", "classify")
    content = {"rows": ROWS, "labels": LABELS}
    runtime.start_human_loop(
        HumanLoopName="Ticket-Rows-1",
        FlowDefinitionArn=FLOW_ARN,
        HumanLoopInput={"InputContent": json.dumps(content)},
    )
    loop_task = desk.loop_task("Ticket-Rows-1")
    after = NewTask(text=NEXT_TEXT, mode=Mode.MULTI_CLASS, choices=tuple(LABELS), reason="audit", priority=-1)
    (next_task,) = desk.tagloop.review.add_tasks([after])

    visit = Visit(chromium, desk.url)
    visit.log_in("ana")  # /login, then the queue at /review
    page = visit.page
    assert visit.task_id() == loop_task  # the queue handed out the loop
    assert page.locator("#answer-form").count() == 0  # the template's own form answers
    frame = shown_in_full(page)
    assert frame.locator("td").nth(3).inner_text() == ROWS[1]["text"]  # input shown as text
    visit.screenshot("a2i-review-rows-1280")
    phone = Visit(chromium, desk.url, width=390, height=844)
    phone.log_in("ana")  # the same lease: the same task
    shown_in_full(phone.page)
    phone.screenshot("a2i-review-rows-390")
    phone.close()

    frame.locator("button.crowd-submit").click()  # no row chosen yet: the browser refuses
    assert desk.tagloop.review.get(loop_task).answered == 0
    for index, team in enumerate(["HARDWARE", "BILLING", "NETWORK"]):
        frame.locator(f"select[name=team-{index}]").select_option(team)
    frame.locator("button.crowd-submit").click()
    # the frame says it answered (postMessage): the page shows the next task, tagloop's own
    page.wait_for_function(f"() => document.getElementById('task').dataset.task === {json.dumps(next_task)}")
    assert page.text_content('[data-testid="text"]') == NEXT_TEXT
    visit.screenshot("a2i-review-next-1280")
    visit.close()  # nothing left 127.0.0.1, no console error

    described = runtime.describe_human_loop(HumanLoopName="Ticket-Rows-1")
    assert described["HumanLoopStatus"] == "Completed"
    uri = described["HumanLoopOutput"]["OutputS3Uri"]
    assert uri.startswith(desk.tagloop.artifacts.url) and uri.endswith("/Ticket-Rows-1/output.json")
    output = json.loads(desk.tagloop.artifacts.read_bytes(uri))
    (human,) = output["humanAnswers"]
    assert human["answerContent"] == {"team-0": "HARDWARE", "team-1": "BILLING", "team-2": "NETWORK"}
    assert human["workerId"] == "ana" and human["timeSpentInSeconds"] > 0
    assert output["flowDefinitionArn"] == FLOW_ARN and output["humanLoopName"] == "Ticket-Rows-1"
    assert output["inputContent"] == content
