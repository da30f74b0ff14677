"""The real `tagloop` command, run as a process: output shapes, exit codes, error lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tagloop.domain.metrics import METRIC_NAMES


def tagloop(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tagloop.cli", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tickets):
    """A data dir with the tickets classifier `desk` trained twice (v1, then `named`)."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "tickets.csv"
    import csv

    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    first = json.loads(ok(tagloop(root / "data", "train", "desk", "--data", str(data), "--json")))
    second = json.loads(
        ok(tagloop(root / "data", "train", "desk", "--data", str(data), "--version-name", "named", "--json"))
    )
    return root, data, first, second


def test_train_prints_one_json_document(trained):
    _, _, first, second = trained
    assert set(first) >= {
        "classifier",
        "version",
        "status",
        "metrics",
        "labels",
        "documents",
        "train_seconds",
    }
    assert (first["classifier"], first["version"], first["status"]) == ("desk", "v1", "TRAINED")
    assert list(first["metrics"]) == list(METRIC_NAMES)
    assert first["documents"] == {"train": 372, "test": 42}
    assert first["labels"] == ["ACCESS", "BILLING", "EMAIL", "HARDWARE", "NETWORK", "SOFTWARE"]
    assert second["version"] == "named"


def test_evaluate_classify_and_listings(trained):
    root, data, first, _ = trained
    evaluated = json.loads(
        ok(tagloop(root / "data", "evaluate", "desk", "--data", str(data), "--version", "v1", "--json"))
    )
    assert list(evaluated["metrics"]) == list(METRIC_NAMES)
    assert evaluated["documents"] == 414
    assert evaluated["metrics"]["Accuracy"] > first["metrics"]["Accuracy"] - 0.2  # training data included

    out = ok(tagloop(root / "data", "classify", "desk", "printer is jammed", "refund my invoice", "--json"))
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["Classes"][0]["Name"] for r in results] == ["HARDWARE", "BILLING"]
    scores = [c["Score"] for c in results[0]["Classes"]]
    assert scores == sorted(scores, reverse=True)

    stdin = "wifi keeps dropping\nmailbox is full\nreset my password please\n"
    out = ok(
        tagloop(root / "data", "classify", "desk", "--version", "v1", "--top", "2", "--json", stdin=stdin)
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3
    assert all(len(line["Classes"]) == 2 for line in lines)

    classifiers = json.loads(ok(tagloop(root / "data", "classifiers", "--json")))
    assert [(c["name"], c["versions"], c["latest_trained_version"]) for c in classifiers] == [
        ("desk", 2, "named")
    ]
    versions = json.loads(ok(tagloop(root / "data", "versions", "desk", "--json")))
    assert [v["version"] for v in versions] == ["v1", "named"]
    full = json.loads(ok(tagloop(root / "data", "versions", "desk", "v1", "--json")))
    assert full["confusion_matrix"]["labels"] == first["labels"]


def test_multi_label_with_another_delimiter(tmp_path):
    rows = []
    for i in range(40):
        rows.append(f"NET;HW,the router {i} and the laptop dock {i} both fail")
        rows.append(f"NET,the vpn tunnel {i} drops")
        rows.append(f"HW,the keyboard {i} is broken")
    data = tmp_path / "ml.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    args = ("train", "ml", "--data", str(data), "--mode", "multi-label", "--delimiter", ";", "--json")
    result = json.loads(ok(tagloop(tmp_path / "data", *args)))
    assert result["labels"] == ["HW", "NET"]
    out = ok(tagloop(tmp_path / "data", "classify", "ml", "router and dock fail", "--json"))
    assert {label["Name"] for label in json.loads(out)["Labels"]} == {"HW", "NET"}


def test_a_malformed_file_is_refused_with_lines_and_nothing_written(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text('NETWORK,vpn down\nHARDWARE,\n"broken,quote\nACCESS,fine\n', encoding="utf-8")
    result = tagloop(tmp_path / "data", "train", "desk", "--data", str(data))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "line 2: empty text" in result.stderr
    assert ":3: bad quoting" in result.stderr
    assert json.loads(ok(tagloop(tmp_path / "data", "classifiers", "--json"))) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("classify", "nobody", "hello"), "no classifier named 'nobody'"),
        (("train", "desk", "--data", "/no/such/file.csv"), "no such file"),
        (("versions", "nobody"), "no classifier named"),
        (("train", "desk", "--data", "x.csv", "--mode", "sideways"), "unknown mode"),
    ],
)
def test_user_mistakes_exit_nonzero_with_one_line(tmp_path, args, needle):
    result = tagloop(tmp_path / "data", *args)
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_db_upgrade_and_demo(tmp_path):
    assert "schema at revision" in tagloop(tmp_path / "data", "db", "upgrade").stderr
    created = json.loads(ok(tagloop(tmp_path / "data", "demo", "--json")))
    assert created["classifier"] == "service-desk"
    assert ok(tagloop(tmp_path / "data", "demo", "--json")).strip() == "null"  # already there
