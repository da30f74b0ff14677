"""`tagloop monitor ENDPOINT` run as a process: one JSON document with --json, a readable
table without (labels printed as written, never as markup), and one-line refusals."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tagloop.app import Tagloop
from tagloop.services.prediction_log import new_prediction_id
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.repositories import PredictionRepository
from tagloop.storage.tables import utcnow

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tickets) -> Path:
    """Endpoint `desk` on the trained tickets classifier, with 30 predictions in the last hour,
    all of the label `[bold]NET` (not one it learnt: drift)."""
    root = tmp_path_factory.mktemp("monitor")
    data = root / "tickets.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    tagloop = Tagloop(Settings(data_dir=root / "data"))
    try:
        tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
        tagloop.endpoints.create("desk", "desk")
        now = utcnow()
        rows = [
            {
                "id": new_prediction_id(),
                "endpoint": "desk",
                "version_id": None,
                "text": None,
                "result": "{}",
                "top_label": "[bold]NET",
                "top_score": 0.42,
                "created_at": now - timedelta(seconds=i),
            }
            for i in range(30)
        ]
        with tagloop.database.transaction() as session:
            PredictionRepository(session).add_many(rows)
    finally:
        tagloop.close()
    return root / "data"


def start(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    environment["TAGLOOP_DRIFT_MIN_COUNT"] = "10"
    environment["COLUMNS"] = "200"
    return subprocess.Popen(
        [*COMMAND, "--data-dir", str(data_dir), "monitor", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def test_monitor_json_table_and_refusals(data_dir):
    runs = {
        "json": start(data_dir, "desk", "--days", "2", "--json"),
        "table": start(data_dir, "desk", "--days", "2"),
        "unknown": start(data_dir, "nope"),
        "zero": start(data_dir, "desk", "--days", "0"),
    }
    done = {name: (process, *process.communicate(timeout=300)) for name, process in runs.items()}

    process, out, err = done["json"]
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    found = json.loads(lines[0])
    assert [day["day"] for day in found["days"]][-1] == utcnow().date().isoformat() or len(found["days"]) == 2
    assert sum(day["predictions"] for day in found["days"]) == 30
    assert found["drift"] is True and found["min_count"] == 10

    process, out, err = done["table"]
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "desk: classifier desk, version v1" in out
    assert "[bold]NET" in out  # the label as written, not read as Rich markup
    assert "DRIFT" in out and "PSI" in out

    for name, message in (("unknown", "no endpoint named 'nope'"), ("zero", "days")):
        process, out, err = done[name]
        assert process.returncode != 0 and out == ""
        assert err.startswith("error: ") and message in err and "Traceback" not in err
