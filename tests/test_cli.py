"""The real `tagloop` command, run as a process: output shapes, exit codes, error lines."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from tagloop.domain.metrics import METRIC_NAMES
from tagloop.storage.migrate import MIGRATIONS

TICKET_LABELS = ["ACCESS", "BILLING", "EMAIL", "HARDWARE", "NETWORK", "SOFTWARE"]
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()  # the schema revision of this tagloop
SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]


@dataclass
class Started:
    command: list[str]
    process: subprocess.Popen[str]
    stdin: str | None


def start(
    *args: str, data_dir: Path | None = None, stdin: str | None = None, env: dict[str, str] | None = None
) -> Started:
    """Start the console script with a clean TAGLOOP_* environment (see :func:`finish`).

    Each process costs seconds of start-up, so independent commands are started together.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    environment.update(env or {})
    command = [*COMMAND, *(["--data-dir", str(data_dir)] if data_dir is not None else []), *args]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    return Started(command, process, stdin)


def finish(*started: Started) -> list[subprocess.CompletedProcess[str]]:
    results = []
    for item in started:
        stdout, stderr = item.process.communicate(item.stdin, timeout=300)
        results.append(subprocess.CompletedProcess(item.command, item.process.returncode, stdout, stderr))
    return results


def run(*args: str, **options) -> subprocess.CompletedProcess[str]:
    return finish(start(*args, **options))[0]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """A user mistake: non-zero exit, a reason on stderr, no traceback, nothing on stdout."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""
    return result.stderr


def one_json_document(stdout: str):
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def write_tickets(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tickets):
    """A data dir with the tickets classifier `desk` trained twice (v1, v2)."""
    root = tmp_path_factory.mktemp("cli")
    data = write_tickets(root / "tickets.csv", tickets)
    env = {"TAGLOOP_DATA_DIR": str(root / "data")}
    first = ok(run("train", "desk", "--data", str(data), "--json", env=env))
    second = ok(run("train", "desk", "--data", str(data), "--json", data_dir=root / "data"))
    return root / "data", data, first, second


def test_train_prints_one_json_document(trained):
    data_dir, _, first_out, second_out = trained
    assert (data_dir / "tagloop.db").exists()  # TAGLOOP_DATA_DIR and --data-dir: the same place
    first, second = one_json_document(first_out), one_json_document(second_out)
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
    assert (second["classifier"], second["version"], second["status"]) == ("desk", "v2", "TRAINED")
    assert sorted(first["metrics"]) == sorted(METRIC_NAMES)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in first["metrics"].values())
    assert first["documents"] == second["documents"] == {"train": 372, "test": 42}
    assert first["labels"] == second["labels"] == TICKET_LABELS
    assert isinstance(first["train_seconds"], float) and first["train_seconds"] > 0
    assert first["metrics"] == second["metrics"]  # same data, same split, same seed


def test_version_name_and_multi_label_modes(tmp_path):
    pipe_rows, semicolon_rows = [], []
    for i in range(40):
        pipe_rows += [
            ["NET|HW", f"the router {i} and the laptop dock {i} both fail"],
            ["NET", f"the vpn tunnel {i} drops"],
            ["HW", f"the keyboard {i} is broken"],
        ]
        semicolon_rows += [[label.replace("|", ";"), text] for label, text in pipe_rows[-3:]]
    pipe = write_tickets(tmp_path / "pipe.csv", pipe_rows)
    semicolon = write_tickets(tmp_path / "semicolon.csv", semicolon_rows)
    piped, semi = finish(
        start(
            "train",
            "ml",
            "--data",
            str(pipe),
            "--mode",
            "multi-label",
            "--version-name",
            "first-try",
            "--json",
            data_dir=tmp_path / "pipe",
        ),
        start(
            "train",
            "ml",
            "--data",
            str(semicolon),
            "--mode",
            "multi-label",
            "--delimiter",
            ";",
            "--json",
            data_dir=tmp_path / "semicolon",
        ),
    )
    result = one_json_document(ok(piped))
    assert (result["version"], result["status"], result["labels"]) == ("first-try", "TRAINED", ["HW", "NET"])
    assert sorted(result["metrics"]) == sorted(METRIC_NAMES)
    assert result["documents"]["train"] + result["documents"]["test"] == 120
    result = one_json_document(ok(semi))
    assert (result["version"], result["status"], result["labels"]) == ("v1", "TRAINED", ["HW", "NET"])
    texts = ("router and dock fail", "keyboard broken")
    for classified in finish(
        *(
            start("classify", "ml", *texts, "--json", data_dir=tmp_path / name)
            for name in ("pipe", "semicolon")
        )
    ):
        both, keyboard = [json.loads(line) for line in ok(classified).splitlines()]
        assert {label["Name"] for label in both["Labels"]} == {"HW", "NET"}
        assert keyboard["Labels"][0]["Name"] == "HW"
        scores = [label["Score"] for label in both["Labels"]]
        assert scores == sorted(scores, reverse=True)


def test_evaluate_and_classify(trained, tickets, tmp_path):
    data_dir = trained[0]
    test = write_tickets(tmp_path / "test.csv", tickets[-60:])
    stdin = (
        "wifi keeps dropping\n\nmy mailbox is full\nreset my password please\nthe laptop screen flickers\n"
    )
    evaluated, by_argument, by_line = finish(
        start("evaluate", "desk", "--data", str(test), "--version", "v1", "--json", data_dir=data_dir),
        start("classify", "desk", "printer is jammed", "refund my invoice", "--json", data_dir=data_dir),
        start("classify", "desk", "--version", "v1", "--top", "2", "--json", data_dir=data_dir, stdin=stdin),
    )
    evaluation = one_json_document(ok(evaluated))
    assert (evaluation["classifier"], evaluation["version"], evaluation["documents"]) == ("desk", "v1", 60)
    assert sorted(evaluation["metrics"]) == sorted(METRIC_NAMES)
    assert all(0.0 <= v <= 1.0 for v in evaluation["metrics"].values())
    assert set(evaluation["per_label"]) == set(TICKET_LABELS)

    results = [json.loads(line) for line in ok(by_argument).splitlines()]
    assert [r["Classes"][0]["Name"] for r in results] == ["HARDWARE", "BILLING"]
    for result in results:
        assert sorted(c["Name"] for c in result["Classes"]) == TICKET_LABELS
        scores = [c["Score"] for c in result["Classes"]]
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)

    assert by_line.returncode == 1  # one document could not be classified: said so, the rest printed
    assert "1 document(s) could not be classified" in by_line.stderr
    assert "Traceback" not in by_line.stderr
    lines = [json.loads(line) for line in by_line.stdout.splitlines()]
    assert len(lines) == 5  # one JSON line per input line, in order
    assert lines[1] == {"Error": {"Code": "InvalidRequestException", "Message": "empty text"}}
    assert [line["Classes"][0]["Name"] for i, line in enumerate(lines) if i != 1] == [
        "NETWORK",
        "EMAIL",
        "ACCESS",
        "HARDWARE",
    ]
    for line in lines[:1] + lines[2:]:
        assert len(line["Classes"]) == 2
        assert line["Classes"][0]["Score"] >= line["Classes"][1]["Score"]


def test_listings(trained):
    data_dir = trained[0]
    classifiers, versions, full = finish(
        start("classifiers", "--json", data_dir=data_dir),
        start("versions", "desk", "--json", data_dir=data_dir),
        start("versions", "desk", "v1", "--json", data_dir=data_dir),
    )
    classifiers = one_json_document(ok(classifiers))
    assert [(c["name"], c["mode"], c["versions"], c["latest_trained_version"]) for c in classifiers] == [
        ("desk", "MULTI_CLASS", 2, "v2")
    ]
    versions = one_json_document(ok(versions))
    assert [(v["version"], v["status"]) for v in versions] == [("v1", "TRAINED"), ("v2", "TRAINED")]
    assert all(sorted(v["metrics"]) == sorted(METRIC_NAMES) for v in versions)
    full = one_json_document(ok(full))
    assert full["version"] == "v1"
    assert full["confusion_matrix"]["labels"] == TICKET_LABELS
    assert set(full["library_versions"]) >= {"python", "numpy", "scipy", "scikit-learn", "tagloop"}
    assert len(full["artifact"]["sha256"]) == 64


def test_user_mistakes_exit_nonzero_with_a_reason_and_write_nothing(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text('NETWORK,vpn down\nHARDWARE,\nEMAIL,mailbox full\n"broken,quote\nACCESS,fine\n')
    malformed, unknown, missing, mode = finish(  # separate data dirs: nothing shared
        start("train", "desk", "--data", str(data), data_dir=tmp_path / "a"),
        start("classify", "nobody", "hello", data_dir=tmp_path / "b"),
        start("train", "desk", "--data", str(tmp_path / "no-such.csv"), data_dir=tmp_path / "c"),
        start("train", "desk", "--data", str(data), "--mode", "sideways", data_dir=tmp_path / "d"),
    )
    assert malformed.returncode == 1
    stderr = refused(malformed)
    assert "2 rows rejected" in stderr and "line 2: empty text" in stderr
    assert f"{data}:2: empty text" in stderr
    assert f"{data}:4: bad quoting" in stderr
    for result, needle in (
        (unknown, "no classifier named 'nobody'"),
        (missing, "no such file"),
        (mode, "unknown mode 'sideways'"),
    ):
        stderr = refused(result)
        assert needle in stderr
        assert len(stderr.strip().splitlines()) == 1
    assert json.loads(ok(run("classifiers", "--json", data_dir=tmp_path / "a"))) == []


def test_a_broken_environment_is_one_line_not_a_traceback(tmp_path, tickets):
    data = write_tickets(tmp_path / "tickets.csv", tickets)
    (tmp_path / "blocker").write_text("a file, not a folder")
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    artifacts, database, setting = finish(
        start(
            "--artifacts-url",
            str(tmp_path / "blocker" / "models"),
            "train",
            "desk",
            "--data",
            str(data),
            data_dir=tmp_path / "a",
        ),
        start("--database-url", unreachable, "classifiers", data_dir=tmp_path / "b"),
        start("classifiers", data_dir=tmp_path / "c", env={"TAGLOOP_MAX_TEXT_BYTES": "lots"}),
    )
    for result, needle in (
        (artifacts, "Not a directory"),
        (database, "cannot use the database"),
        (setting, "invalid settings: max_text_bytes"),
    ):
        stderr = refused(result)
        assert needle in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr


def test_db_upgrade_and_demo(tmp_path):
    upgraded, created = finish(
        start("db", "upgrade", data_dir=tmp_path / "upgraded"),
        start("demo", "--json", data_dir=tmp_path / "demo"),
    )
    assert f"database schema at revision {HEAD}" in ok(upgraded) + upgraded.stderr
    created = one_json_document(ok(created))
    assert (created["classifier"], created["version"], created["status"]) == ("service-desk", "v1", "TRAINED")
    assert created["labels"] == TICKET_LABELS
    again, listed = finish(
        start("demo", "--json", data_dir=tmp_path / "demo"),
        start("classifiers", "--json", data_dir=tmp_path / "upgraded"),
    )
    assert ok(again).strip() == "null"  # already there
    assert json.loads(ok(listed)) == []


def test_a_server_database_needs_db_upgrade(fresh_postgres, tmp_path):
    stderr = refused(
        run("--database-url", fresh_postgres, "classifiers", "--json", data_dir=tmp_path / "data")
    )
    assert "run `tagloop db upgrade`" in stderr
    result = run("--database-url", fresh_postgres, "db", "upgrade", data_dir=tmp_path / "data")
    assert f"database schema at revision {HEAD}" in ok(result) + result.stderr
    env = {"TAGLOOP_DATABASE_URL": fresh_postgres}
    assert json.loads(ok(run("classifiers", "--json", data_dir=tmp_path / "data", env=env))) == []
    assert not (tmp_path / "data" / "tagloop.db").exists()  # nothing went to the embedded database


def test_a_truncated_gz_is_one_line_naming_the_file(tmp_path, tickets):
    """Was `Aborted.` alone: click takes an EOFError for Ctrl-D."""
    whole = write_tickets(tmp_path / "tickets.csv", tickets).read_bytes()
    compressed = gzip.compress(whole)
    data = tmp_path / "data.csv.gz"
    data.write_bytes(compressed[: len(compressed) // 2])
    stderr = refused(run("train", "desk", "--data", str(data), data_dir=tmp_path / "data"))
    assert stderr.startswith(f"error: {data}: compressed file is truncated or damaged ("), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_background_training_says_when_no_worker_would_run_it(tmp_path, tickets):
    data_dir = tmp_path / "data"
    data = write_tickets(tmp_path / "tickets.csv", tickets)
    queued = run("train", "desk", "--data", str(data), "--background", data_dir=data_dir)
    assert ok(queued).strip()  # the job id
    assert (
        "warning: no worker has been seen in the last 15 s: start `tagloop worker` (or `tagloop serve`) "
        "to run it" in queued.stderr
    )
    assert json.loads(ok(run("workers", "--json", data_dir=data_dir))) == []
    assert "no worker has announced itself" in run("workers", data_dir=data_dir).stderr

    worker = start("worker", "--concurrency", "1", data_dir=data_dir)
    try:
        deadline = time.monotonic() + 120
        while not (listed := json.loads(ok(run("workers", "--json", data_dir=data_dir)))):
            assert worker.process.poll() is None and time.monotonic() < deadline, (
                "the worker never announced itself"
            )
        assert [(row["kind"], row["pid"], row["concurrency"], row["alive"]) for row in listed] == [
            ("local", worker.process.pid, 1, True)
        ]
        assert " s ago" in ok(run("workers", data_dir=data_dir))
        again = run("train", "desk", "--data", str(data), "--background", data_dir=data_dir)
        assert ok(again) and "warning" not in again.stderr
    finally:
        worker.process.send_signal(signal.SIGTERM)
        worker.process.communicate(timeout=120)
    assert worker.process.returncode == 0
    assert json.loads(ok(run("workers", "--json", data_dir=data_dir))) == []  # it said goodbye


def test_predictions_lists_what_was_logged(tmp_path, tickets):
    from tagloop.app import Tagloop
    from tagloop.services.training import TrainRequest
    from tagloop.settings import Settings

    data_dir = tmp_path / "data"
    app = Tagloop(Settings(data_dir=data_dir))
    try:
        app.training.train(
            TrainRequest(classifier="desk", data=str(write_tickets(tmp_path / "t.csv", tickets)))
        )
        _, model = app.predictions.model("desk")
        version_id = 1  # the first version of this new database
        texts = ["my vpn keeps dropping", "the printer on floor 3\nis jammed"]
        ids = [
            app.prediction_log.record("desk", version_id, text, prediction)
            for text, prediction in zip(texts, app.predictions.classify(model, texts), strict=True)
        ]
    finally:
        app.close()  # writes the log
    listed, network, one, lines, wrong = finish(
        start("predictions", "desk", "--json", data_dir=data_dir),
        start("predictions", "--label", "NETWORK", "--since", "1h", "--json", data_dir=data_dir),
        start("predictions", "desk", "--limit", "1", "--json", data_dir=data_dir),
        start("predictions", data_dir=data_dir),
        start("predictions", "--since", "yesterday", data_dir=data_dir),
    )
    rows = json.loads(ok(listed))
    assert [row["id"] for row in rows] == ids[::-1]
    assert [row["text"] for row in rows] == texts[::-1]
    assert [row["id"] for row in json.loads(ok(network))] == [ids[0]]
    assert [row["id"] for row in json.loads(ok(one))] == [ids[1]]
    table = ok(lines).splitlines()
    assert len(table) == 2  # one line per prediction, the text on one line
    fields = table[0].split("\t")
    assert fields[1:4] == [ids[1], "desk", "desk v1"] and fields[-1] == "the printer on floor 3 is jammed"
    assert "since: 'yesterday' is not a date" in refused(wrong)
