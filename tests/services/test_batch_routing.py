"""Batch jobs routed by an endpoint's policy: native lines say so and their tasks exist;
Comprehend's lines stay Comprehend's; a shard run again writes no task twice."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import select

from tagloop.errors import InvalidRequest, NotFound
from tagloop.services.batch import BatchRequest
from tagloop.services.endpoints import Serving
from tagloop.services.routing import route_batch
from tagloop.services.training import TrainRequest
from tagloop.storage.tables import ReviewTaskRow


@pytest.fixture
def trained(make_tagloop, tickets, write_csv):
    tagloop = make_tagloop()
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk")["job_id"])
    return tagloop


def run_batch(tagloop, request: BatchRequest) -> dict:
    job_id = tagloop.batch.submit(request)
    tagloop.start_workers()
    tagloop.queue.wait(job_id, timeout=120)
    job = tagloop.jobs.show(job_id)
    assert job["status"] == "COMPLETED", job
    return job


def task_ids(tagloop) -> set[str]:
    with tagloop.database.reading() as session:
        return set(session.scalars(select(ReviewTaskRow.id)))


def test_routed_lines_say_so_in_the_native_layout_only(trained, tickets, tmp_path):
    source = tmp_path / "in.txt"
    texts = [text for text, _ in tickets][:60]
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="routes nothing"):
        trained.batch.submit(BatchRequest("desk", str(source), str(tmp_path / "x"), routing="desk"))
    with pytest.raises(NotFound, match="nope"):
        trained.batch.submit(BatchRequest("desk", str(source), str(tmp_path / "x"), routing="nope"))
    trained.endpoints.set_routing("desk", {"threshold": 0.6, "audit": 0.2, "required": 2})
    job = run_batch(
        trained, BatchRequest("desk", str(source), str(tmp_path / "out"), shard_documents=25, routing="desk")
    )
    lines = [
        json.loads(line)
        for part in sorted(Path(job["result"]["output"]).glob("part-*.jsonl"))
        for line in part.read_text(encoding="utf-8").splitlines()
    ]
    assert len(lines) == 60 and all("review" in line for line in lines)
    routed = {line["review"]["task_id"]: line for line in lines if line["review"]["routed"]}
    assert routed and len(routed) < 60
    assert set(routed) == task_ids(trained)
    with trained.database.reading() as session:
        for row in session.scalars(select(ReviewTaskRow)):
            line = routed[row.id]
            assert row.text == texts[line["Line"]] and row.reason == line["review"]["reason"]
            assert row.required == 2 and row.endpoint == "desk" and row.prediction_id is None
    comprehend = run_batch(
        trained,
        BatchRequest("desk", str(source), str(tmp_path / "aws"), layout="comprehend", routing="desk"),
    )
    with tarfile.open(comprehend["result"]["output"], "r:gz") as tar:
        aws_lines = [json.loads(line) for line in tar.extractfile("predictions.jsonl").read().splitlines()]
    assert len(aws_lines) == 60 and not any("review" in line for line in aws_lines)  # Comprehend's lines
    assert len(task_ids(trained)) > len(routed)  # its routed documents have their tasks all the same


def test_a_shard_run_again_routes_the_same_and_writes_nothing_twice(trained, tickets):
    trained.endpoints.set_routing("desk", {"audit": 0.5})
    serving = trained.endpoints.serving("desk")
    texts = [text for text, _ in tickets][:40]
    predictions = list(trained.predictions.classify(serving.model, texts, 3))
    write = trained.review_tasks.write_now
    first = route_batch(serving, serving.routing, texts, predictions, "job:0:0", trained.database, write)
    again = route_batch(serving, serving.routing, texts, predictions, "job:0:0", trained.database, write)
    assert first == again and any(review["routed"] for review in first)
    assert len(task_ids(trained)) == sum(review["routed"] for review in first)
    other = route_batch(serving, serving.routing, texts, predictions, "job:1:0", trained.database, write)
    assert other != first  # another shard draws differently
    assert isinstance(serving, Serving)
