"""`tagloop pool ...`, `tagloop review fill|refill` and `tagloop endpoints pool` run as processes
on a data folder with a trained classifier: one JSON document on stdout with --json, the
rejected rows and one-line errors on stderr, exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]
TEXTS = [
    "The printer on floor 2 prints blank pages since this morning",
    "I can't open the shared mailbox for the finance team",
    "the printer on floor 2 prints  blank pages since this morning",
    "",
    "VPN disconnects whenever I join a video call",
    "Need access to the HR folder on the file server",
]


@pytest.fixture
def data_dir(tmp_path, tickets_csv) -> Path:
    root = tmp_path / "data"
    tagloop = Tagloop(Settings(data_dir=root))
    try:
        tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
        created = tagloop.endpoints.create("desk-ep", "desk")
        tagloop.queue.run_now(created["job_id"])
    finally:
        tagloop.close()
    return root


def run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    done = subprocess.run(
        [*COMMAND, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def test_add_count_fill_list_and_clear(data_dir, tmp_path):
    path = tmp_path / "unlabelled.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS), encoding="utf-8")
    status, out, err = run(data_dir, "pool", "add", "desk", str(path), "--json")
    assert status == 0, err
    report = json.loads(out)
    assert (report["added"], report["duplicates"], report["rejected"]) == (4, 1, 1)
    assert report["rejected_rows"] == [{"line": 4, "reason": "empty text"}]
    status, out, err = run(data_dir, "pool", "add", "desk", str(path))
    assert status == 0 and "added 0 to the pool of desk; 5 duplicates, 1 rejected" in out
    assert f"{path}:4: empty text" in err
    status, out, _ = run(
        data_dir, "review", "fill", "desk", "--strategy", "entropy", "--count", "2", "--json"
    )
    filled = json.loads(out)
    assert status == 0 and filled["picked"] == 2 and filled["strategy"] == "entropy"
    count = json.loads(run(data_dir, "pool", "count", "desk", "--json")[1])
    assert (count["waiting"], count["picked"]) == (2, 2)
    listed = json.loads(run(data_dir, "pool", "list", "desk", "--picked", "--json")[1])
    assert {doc["task_id"] for doc in listed["documents"]} == {task["task_id"] for task in filled["tasks"]}
    assert all(doc["task_status"] == "InProgress" for doc in listed["documents"])
    tasks = json.loads(run(data_dir, "review", "list", "desk", "--json")[1])
    assert {task["reason"] for task in tasks} == {"active_learning"}
    status, out, _ = run(data_dir, "pool", "clear", "desk", "--json")
    assert status == 0 and json.loads(out)["removed"] == 2


def test_endpoint_rate_and_errors(data_dir, tmp_path):
    status, out, _ = run(data_dir, "endpoints", "pool", "desk-ep", "--rate", "0.25", "--json")
    assert status == 0 and json.loads(out)["pool_rate"] == 0.25
    status, out, _ = run(data_dir, "pool", "sample", "--json")
    assert status == 0 and json.loads(out) == {
        "endpoints": {"desk-ep": {"examined": 0, "added": 0, "duplicates": 0}}
    }
    status, out, _ = run(data_dir, "review", "refill", "--json")
    assert status == 0 and json.loads(out) == {"classifiers": {}}
    for args, reason in [
        (("endpoints", "pool", "desk-ep", "--rate", "2"), "pool_rate: 2.0 is not from 0 to 1"),
        (("review", "fill", "desk", "--strategy", "guess"), "unknown strategy 'guess'"),
        (("review", "fill", "desk"), "has no documents waiting"),
        (("pool", "count", "nobody"), "no classifier named 'nobody'"),
        (("pool", "add", "desk", str(tmp_path / "missing.csv")), "no such file"),
    ]:
        status, out, err = run(data_dir, *args, "--json")
        assert status == 1 and out == "", (args, out)
        assert err.startswith("error:") and reason in err, (args, err)


def test_train_with_self_training_learns_from_the_pool(data_dir, tmp_path, tickets_csv):
    path = tmp_path / "unlabelled.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS if t), encoding="utf-8")
    assert run(data_dir, "pool", "add", "desk", str(path), "--json")[0] == 0
    status, out, err = run(data_dir, "train", "desk", "--data", str(tickets_csv), "--self-training", "--json")
    assert status == 0, err
    assert json.loads(out)["version"] == "v2"
    tagloop = Tagloop(Settings(data_dir=data_dir))
    try:
        assert tagloop.catalog.version("desk", "v2")["parameters"]["self_training"] is True
        _, model = tagloop.predictions.model("desk", "v2")
        assert model.calibration["self_trained"] == tagloop.pool.count("desk")["waiting"] > 0  # type: ignore[attr-defined]
    finally:
        tagloop.close()
