"""A flow definition's S3OutputPath on an allowed bucket prefix: output.json lands in S3 in
A2I's place (real moto server); another prefix of the same bucket is not used."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import fsspec

from tagloop.services.human_loops import FlowRequest
from tagloop.storage.tables import ReviewAnswerRow, ReviewTaskRow


def test_output_json_in_an_allowed_bucket(make_tagloop, bucket):
    tagloop = make_tagloop(allowed_data_urls=(f"s3://{bucket}/a2i/",))
    loops = tagloop.human_loops
    for name, path in (("allowed", f"s3://{bucket}/a2i/out/"), ("other-prefix", f"s3://{bucket}/private/")):
        loops.create_flow(
            FlowRequest(
                name=name, task_ui="tagloop", title="t", description="d", task_count=1, output_path=path
            )
        )
    assert loops.flow("allowed").output_root == f"s3://{bucket}/a2i/out"
    assert loops.flow("other-prefix").output_root == loops.default_output
    created = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    task_id = str(uuid.uuid4())
    with tagloop.database.transaction() as session:
        session.add(
            ReviewTaskRow(
                id=task_id,
                text="t",
                mode="MULTI_CLASS",
                choices=["A"],
                reason="a2i",
                status="Completed",
                loop_name="s3-loop",
                flow_definition_id=loops.flow("allowed").id,
                input_content={"taskObject": "t"},
                created_at=created,
            )
        )
        session.flush()
        session.add(
            ReviewAnswerRow(
                task_id=task_id,
                reviewer="erin",
                status="answered",
                answer_content={"sentiment": {"label": "A"}},
                leased_at=created,
                answered_at=created + timedelta(seconds=2),
            )
        )
    uri = loops.write_output(task_id)
    assert uri == f"s3://{bucket}/a2i/out/allowed/2026/05/06/07/08/09/s3-loop/output.json"
    stored = json.loads(fsspec.filesystem("s3", skip_instance_cache=True).cat_file(uri))
    assert stored["humanAnswers"][0]["answerContent"] == {"sentiment": {"label": "A"}}
    assert stored["humanLoopName"] == "s3-loop"
