"""An inbox on an S3 prefix of a real (moto) server: objects are fingerprinted by ETag, picked
up, moved to ``processed/`` or ``failed/`` with their error report, all within the prefix."""

from __future__ import annotations

import csv
import io
import json

import fsspec


def s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", skip_instance_cache=True)


def csv_bytes(rows) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def test_an_s3_inbox_processes_and_fails_files_within_its_prefix(bucket, make_tagloop, tickets):
    tagloop = make_tagloop(inbox_stable_seconds=0)
    added = tagloop.inbox.add("desk", f"s3://{bucket}/inbox/")
    assert added["url"] == f"s3://{bucket}/inbox"
    assert tagloop.inbox.scan()["inboxes"][0] == {"inbox": "desk", "seen": [], "claimed": [], "error": None}
    fs = s3()
    fs.pipe_file(f"{bucket}/inbox/tickets.csv", csv_bytes(tickets[:50]))  # an upload in progress...
    fs.pipe_file(f"{bucket}/elsewhere/tickets.csv", csv_bytes(tickets))  # outside the prefix
    assert tagloop.inbox.scan()["inboxes"][0]["seen"] == ["tickets.csv"]
    fs.pipe_file(f"{bucket}/inbox/tickets.csv", csv_bytes(tickets))  # ...replaced: a new ETag
    assert tagloop.inbox.scan()["inboxes"][0]["claimed"] == []
    [seen] = tagloop.inbox.status("desk")["recent_files"]
    assert seen["fingerprint"].startswith("etag:") and seen["size"] == len(csv_bytes(tickets))
    assert tagloop.inbox.scan()["inboxes"][0]["claimed"] == ["tickets.csv"]
    fs.pipe_file(f"{bucket}/inbox/bad.jsonl", b'{"text": "no labels"}\n{"labels": ["A"]}\n')
    fs.pipe_file(f"{bucket}/inbox/bad.jsonl.ready", b"")
    assert tagloop.inbox.scan()["inboxes"][0]["claimed"] == ["bad.jsonl"]
    assert tagloop.queue.run_until_idle() == 2

    keys = sorted(key.split("/", 1)[1] for key in fs.find(bucket))
    assert keys == [
        "elsewhere/tickets.csv",
        "inbox/failed/bad.jsonl",
        "inbox/failed/bad.jsonl.error.json",
        "inbox/processed/tickets.csv",
    ]
    report = json.loads(fs.cat_file(f"{bucket}/inbox/failed/bad.jsonl.error.json"))
    assert [row["line"] for row in report["rows"]] == [1, 2]
    serving = tagloop.endpoints.serving("desk", refresh=True)
    assert serving.version == "v1"
    [processed] = [e["payload"] for e in tagloop.loops.events(kind="inbox.processed")]
    assert processed["moved_to"] == "processed/tickets.csv" and processed["deployment"] == "created"
    versions = tagloop.training.summary(processed["version_id"])
    assert versions["documents"]["train"] + versions["documents"]["test"] == len(tickets)


def test_an_unreachable_bucket_is_recorded_on_the_inbox(s3_endpoint, make_tagloop):
    tagloop = make_tagloop()
    tagloop.inbox.add("desk", "s3://no-such-bucket-tagloop/inbox")
    result = tagloop.inbox.scan()["inboxes"][0]
    assert result["error"] and "cannot list s3://no-such-bucket-tagloop/inbox" in result["error"]
    assert tagloop.inbox.status("desk")["last_error"] == result["error"]
