"""`tagloop review ...` run as a process on a data folder with review tasks: list, show (with
answers), stats, agreement tables, export (stdout and a file, read back), moderate, stop, and
the error lines of unknown tasks and classifiers."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagloop.app import Tagloop
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask
from tagloop.settings import Settings
from tagloop.storage.repositories import ClassifierRepository

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]
CHOICES = ("BILLING", "EMAIL", "NETWORK")


@pytest.fixture
def data_dir(tmp_path) -> tuple[Path, dict[str, str]]:
    """A data folder with classifier `desk` and four tasks: `done` (answered EMAIL by alice and
    bob), `tie` (alice EMAIL, bob BILLING: waiting for a moderator), `open` and `audit`."""
    root = tmp_path / "data"
    tagloop = Tagloop(Settings(data_dir=root))
    try:
        with tagloop.database.transaction() as session:
            desk = ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id
        prediction = {"labels": ["EMAIL", "NETWORK", "BILLING"], "scores": [0.6, 0.3, 0.1]}

        def task(text: str, **fields) -> NewTask:
            values = {"mode": Mode.MULTI_CLASS, "choices": CHOICES, "reason": "low_confidence"}
            return NewTask(text=text, classifier_id=desk, prediction=prediction, **(values | fields))

        review = tagloop.review
        done, tie = review.add_tasks(
            [task("mail is slow", required=2, priority=3), task("invoice twice", required=2, priority=2)]
        )
        opened, audit = review.add_tasks([task("vpn drops", priority=1), task("wifi, again", reason="audit")])
        for reviewer, labels in (("alice", ("EMAIL", "EMAIL")), ("bob", ("EMAIL", "BILLING"))):
            for expected, label in zip((done, tie), labels, strict=True):
                held = review.next_task(reviewer)
                assert held is not None and held.id == expected
                review.answer(held.id, reviewer, labels=[label], seconds=3.0)
        ids = {"done": done, "tie": tie, "open": opened, "audit": audit}
    finally:
        tagloop.close()
    return root, ids


def tagloop(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    return subprocess.Popen(
        [*COMMAND, "--data-dir", str(data_dir), "review", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def results(*started: subprocess.Popen[str]) -> list[tuple[int, str, str]]:
    out = []
    for process in started:
        stdout, stderr = process.communicate(timeout=300)
        assert "Traceback" not in stderr, stderr
        out.append((process.returncode, stdout, stderr))
    return out


def test_list_show_stats_and_agreement(data_dir):
    root, ids = data_dir
    listed, table, shown, shown_json, stats, agreement, filtered = results(
        tagloop(root, "list", "desk", "--json"),
        tagloop(root, "list", "desk", "--queue", "review"),
        tagloop(root, "show", ids["done"]),
        tagloop(root, "show", ids["tie"], "--json"),
        tagloop(root, "stats", "desk", "--reviewer", "alice", "--json"),
        tagloop(root, "agreement", "desk"),
        tagloop(
            root, "list", "desk", "--reason", "audit", "--status", "InProgress", "--limit", "5", "--json"
        ),
    )
    assert all(code == 0 for code, _, _ in (listed, table, shown, shown_json, stats, agreement, filtered))
    tasks = json.loads(listed[1])
    assert {task["id"] for task in tasks} == set(ids.values())
    done = next(task for task in tasks if task["id"] == ids["done"])
    assert (done["status"], done["final_labels"], done["answers"]) == ("Completed", ["EMAIL"], [])
    assert ids["open"] in table[1] and ids["audit"] in table[1] and ids["done"] not in table[1]
    assert "mail is slow" in shown[1] and "alice" in shown[1] and "bob" in shown[1]
    assert "final_labels: EMAIL" in shown[1] and "EMAIL 0.600" in shown[1]
    tie = json.loads(shown_json[1])
    assert tie["queue"] == "moderate" and tie["consolidation"] == "tie"
    assert sorted((a["reviewer"], a["labels"]) for a in tie["answers"]) == [
        ("alice", ["EMAIL"]),
        ("bob", ["BILLING"]),
    ]
    assert json.loads(stats[1]) == {"pending": 2, "moderate": 1, "mine_today": 2, "mine_total": 2}
    for expected in ("fleiss_kappa", "krippendorff_alpha", "per label", "per reviewer", "alice", "EMAIL"):
        assert expected in agreement[1], expected
    assert [task["id"] for task in json.loads(filtered[1])] == [ids["audit"]]


def test_export_to_stdout_and_to_a_file(data_dir, tmp_path):
    root, _ = data_dir
    target = tmp_path / "verified.jsonl"
    as_csv, as_jsonl, _ = results(
        tagloop(root, "export", "desk"),
        tagloop(root, "export", "desk", "--format", "jsonl", "--output", str(target)),
        tagloop(root, "stats"),
    )
    assert as_csv[0] == 0 and list(csv.reader(io.StringIO(as_csv[1]))) == [["EMAIL", "mail is slow"]]
    assert "1 verified documents" in as_csv[2]
    assert as_jsonl[0] == 0 and as_jsonl[1] == ""
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows == [{"text": "mail is slow", "labels": ["EMAIL"], "origin": "review"}]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".verified")] == []


def test_moderate_and_stop(data_dir):
    root, ids = data_dir
    (moderated, stopped) = results(
        tagloop(root, "moderate", ids["tie"], "--label", "BILLING", "--moderator", "carol", "--json"),
        tagloop(root, "stop", ids["open"], "--json"),
    )
    assert moderated[0] == 0, moderated[2]
    decided = json.loads(moderated[1])
    assert (decided["status"], decided["final_labels"], decided["decided_by"]) == (
        "Completed",
        ["BILLING"],
        "carol",
    )
    assert stopped[0] == 0 and json.loads(stopped[1])["status"] == "Stopped"
    exported, again, bad_label, unknown, no_classifier, bad_format = results(
        tagloop(root, "export", "desk", "--format", "jsonl"),
        tagloop(root, "stop", ids["done"]),
        tagloop(root, "moderate", ids["audit"], "--label", "PRINTER"),
        tagloop(root, "show", "nope"),
        tagloop(root, "agreement", "nope"),
        tagloop(root, "export", "desk", "--format", "xml"),
    )
    assert sorted(json.loads(line)["labels"][0] for line in exported[1].splitlines()) == ["BILLING", "EMAIL"]
    for code, stdout, stderr in (again, bad_label, unknown, no_classifier, bad_format):
        assert code == 1 and stdout == "" and stderr.startswith("error: "), stderr
    assert "Completed" in again[2] and "'PRINTER'" in bad_label[2] and "nope" in unknown[2]
    assert "xml" in bad_format[2]
