"""HumanLoopService on SQLite and PostgreSQL: task UIs and flow definitions, listings paged
in creation order (ties on the creation time included), loops read by name and flow, and
output.json written where the flow may write."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tagloop.errors import AlreadyExists, InvalidRequest, NotFound, ResourceInUse
from tagloop.services.human_loops import FlowRequest, loop_text, output_key, parse_input
from tagloop.storage.human_loops import PageRequest
from tagloop.storage.tables import ReviewAnswerRow, ReviewTaskRow


def flow_request(name: str, output: str, ui: str = "tagloop", **changes) -> FlowRequest:
    values = dict(name=name, task_ui=ui, title="t", description="d", task_count=1, output_path=output)
    return FlowRequest(**(values | changes))


def add_loop(tagloop, flow: str, name: str, created_at: datetime, status: str = "Completed") -> str:
    task_id = str(uuid.uuid4())
    with tagloop.database.transaction() as session:
        session.add(
            ReviewTaskRow(
                id=task_id,
                text="",
                mode="MULTI_CLASS",
                choices=["A", "B"],
                reason="a2i",
                status=status,
                loop_name=name,
                flow_definition_id=tagloop.human_loops.flow(flow).id,
                input_content={"taskObject": name},
                created_at=created_at,
            )
        )
    return task_id


def all_pages(fetch, **page) -> list[str]:
    names, token = [], None
    while True:
        items, token = fetch(PageRequest(token=token, limit=2, **page))
        names += [item.name for item in items]
        if token is None:
            return names


def test_task_uis_and_flows(make_tagloop, database_url, tmp_path):
    tagloop = make_tagloop(database_url=database_url)
    loops = tagloop.human_loops
    for index in range(5):
        loops.create_task_ui(f"ui-{index}", "<p>{{ task.input.x }}</p>")
    with pytest.raises(AlreadyExists):
        loops.create_task_ui("ui-0", "<p>x</p>")
    with pytest.raises(InvalidRequest):
        loops.create_task_ui("broken", "{% if %}")
    assert all_pages(loops.task_uis) == [f"ui-{index}" for index in reversed(range(5))]
    assert all_pages(loops.task_uis, ascending=True) == [f"ui-{index}" for index in range(5)]
    flow = loops.create_flow(
        flow_request("f", "s3://elsewhere/", ui="ui-1", tags=[{"Key": "tagloop:labels", "Value": "A / B/A"}])
    )
    assert flow.labels == ["A", "B"] and flow.output_root == loops.default_output and flow.task_ui == "ui-1"
    with pytest.raises(ResourceInUse):
        loops.delete_task_ui("ui-1")
    with pytest.raises(NotFound):
        loops.create_flow(flow_request("g", "s3://x/", ui="missing"))
    with pytest.raises(InvalidRequest):
        loops.create_flow(flow_request("g", "s3://x/", tags=[{"Key": "tagloop:mode", "Value": "ODD"}]))
    loops.delete_flow("f")
    loops.delete_task_ui("ui-1")
    with pytest.raises(NotFound):
        loops.task_ui("ui-1")


def test_loops_page_in_creation_order_with_ties(make_tagloop, database_url):
    tagloop = make_tagloop(database_url=database_url)
    loops = tagloop.human_loops
    loops.create_flow(flow_request("f", "s3://b/"))
    loops.create_flow(flow_request("other", "s3://b/"))
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    for index in range(5):  # three share one creation time
        add_loop(tagloop, "f", f"loop-{index}", moment + timedelta(seconds=max(0, index - 2)))
    add_loop(tagloop, "other", "elsewhere", moment)
    forward = all_pages(lambda page: loops.loops("f", page), ascending=True)
    assert sorted(forward[:3]) == ["loop-0", "loop-1", "loop-2"] and forward[3:] == ["loop-3", "loop-4"]
    assert all_pages(lambda page: loops.loops("f", page)) == list(reversed(forward))
    window = all_pages(
        lambda page: loops.loops("f", page), after=moment, before=moment + timedelta(seconds=2)
    )
    assert window == ["loop-3"]
    with pytest.raises(InvalidRequest):
        loops.loops("f", PageRequest(token="garbage"))
    with pytest.raises(NotFound):
        loops.loops("nope", PageRequest())
    add_loop(tagloop, "f", "running", moment, status="InProgress")
    with pytest.raises(ResourceInUse):
        loops.delete_flow("f")
    with pytest.raises(InvalidRequest):
        loops.delete_loop("running")
    loops.delete_loop("loop-0")
    with pytest.raises(NotFound):
        loops.loop("loop-0")


def test_output_json_goes_where_the_flow_may_write(make_tagloop, database_url, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    tagloop = make_tagloop(database_url=database_url, allowed_data_urls=(f"file://{allowed}/",))
    loops = tagloop.human_loops
    loops.create_flow(flow_request("inside", f"file://{allowed}/out"))
    loops.create_flow(flow_request("outside", f"file://{tmp_path}/not-allowed/"))
    created = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
    for flow in ("inside", "outside"):
        task_id = add_loop(tagloop, flow, f"{flow}-loop", created)
        with tagloop.database.transaction() as session:
            session.add(
                ReviewAnswerRow(
                    task_id=task_id,
                    reviewer="dana",
                    status="answered",
                    labels=["B"],
                    leased_at=created,
                    answered_at=created + timedelta(seconds=3),
                )
            )
        uri = loops.write_output(task_id)
        assert uri is not None and loops.loop(f"{flow}-loop").output_uri == uri
        document = json.loads(Path(uri.removeprefix("file://")).read_text())
        assert document["humanAnswers"][0]["answerContent"] == {"category": {"label": "B"}}
        assert document["humanAnswers"][0]["timeSpentInSeconds"] == 3.0
        assert uri.endswith(f"/{flow}/2026/03/01/12/30/05/{flow}-loop/output.json")
    assert loops.loop("inside-loop").output_uri.startswith(f"file://{allowed}/out/inside/")
    assert loops.loop("outside-loop").output_uri.startswith(loops.default_output)
    assert not (tmp_path / "not-allowed").exists()
    assert loops.write_output("not-a-loop-task") is None


def test_an_output_that_could_not_be_written_is_written_later(make_tagloop, database_url, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    tagloop = make_tagloop(database_url=database_url, allowed_data_urls=(f"file://{allowed}/",))
    loops = tagloop.human_loops
    blocker = allowed / "out"
    blocker.write_text("a file where the output folder should be")  # every write under it fails
    loops.create_flow(flow_request("flow", f"file://{allowed}/out"))
    created = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
    names = ("first", "second")
    for name in names:
        task_id = add_loop(tagloop, "flow", name, created)
        with tagloop.database.transaction() as session:
            session.add(
                ReviewAnswerRow(
                    task_id=task_id, reviewer="dana", status="answered", labels=["A"], answered_at=created
                )
            )
        with pytest.raises(OSError):
            loops.write_output(task_id)  # what the listener logs when the task completes
    assert loops.retry_outputs() == 0  # the store still fails: nothing lost, tried again later
    assert loops.loop("first").output_uri is None and loops.loop("first").status == "Completed"
    blocker.unlink()
    assert loops.loop("first").output_uri is not None  # describing it writes it
    assert loops.retry_outputs() == 1 and loops.retry_outputs() == 0
    for name in names:
        uri = loops.loop(name).output_uri
        assert json.loads(Path(uri.removeprefix("file://")).read_text())["humanLoopName"] == name


def test_pure_helpers():
    assert loop_text({"taskObject": "a", "text": "b"}) == "a"
    assert loop_text({"rows": [1]}) == '{"rows": [1]}'
    assert loop_text("plain") == "plain"
    assert parse_input('{"a": 1}') == {"a": 1}
    for bad in ("", "{", "x" * 10):
        with pytest.raises(InvalidRequest):
            parse_input(bad)
    with pytest.raises(InvalidRequest):
        parse_input(json.dumps({"t": "é" * (2 * 1024 * 1024)}, ensure_ascii=False))
    assert (
        output_key("f", "L", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
        == "f/2026/01/02/03/04/05/L/output.json"
    )
