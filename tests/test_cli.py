"""The real `tagloop` command, run as a process: output shapes, exit codes, error lines."""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import signal
import socket
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


def test_batch_writes_its_own_layout_or_comprehends(trained, tmp_path):
    """`tagloop batch` keeps parts + manifest by default; `--layout comprehend` writes Comprehend's
    `<output>/<account id>-CLN-<job id>/output/output.tar.gz` holding `predictions.jsonl`."""
    import tarfile

    data_dir, _, _, _ = trained
    source = tmp_path / "in.txt"
    source.write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    common = ("batch", "desk", "--input", str(source), "--output", str(tmp_path / "out"), "--json")
    own, comprehend, wrong = finish(
        start(*common, data_dir=data_dir),
        start(*common, "--layout", "comprehend", data_dir=data_dir),
        start(*common, "--layout", "aws", data_dir=data_dir),
    )
    own_job = one_json_document(ok(own))
    assert (Path(own_job["result"]["output"]) / "manifest.json").exists()
    job = one_json_document(ok(comprehend))
    tarball = Path(job["result"]["output"])
    assert tarball == tmp_path / "out" / f"123456789012-CLN-{job['id']}" / "output" / "output.tar.gz"
    with tarfile.open(tarball, "r:gz") as tar:
        lines = [json.loads(line) for line in tar.extractfile("predictions.jsonl").read().splitlines()]
    assert [(line["File"], line["Line"], line["Classes"][0]["Name"]) for line in lines] == [
        ("in.txt", 0, "HARDWARE"),
        ("in.txt", 1, "BILLING"),
    ]
    assert "layout must be one of tagloop, comprehend" in refused(wrong)


# ---- the first hour (issue 12) ---------------------------------------------------------------------
def ticket_export(path: Path, tickets) -> Path:
    """What a ticket system exports: a header, an id, a subject, a description, a category."""
    rows = [["ticket_id", "subject", "description", "category"]]
    rows += [[f"INC{100000 + i}", text[:30], text, label] for i, (label, text) in enumerate(tickets[:300])]
    return write_tickets(path, rows)


def test_a_ticket_export_is_refused_until_its_columns_are_named(tmp_path, tickets):
    """Was: trained with 301 ticket ids as labels, six scikit-learn warnings on stderr; then
    `column text not in the header` for a column never typed, and 300 `missing label` rows."""
    export = ticket_export(tmp_path / "export.csv", tickets)
    plain, label_only, text_only, both = finish(
        start("train", "desk", "--data", str(export), data_dir=tmp_path / "a"),
        start("train", "desk", "--data", str(export), "--label-column", "category", data_dir=tmp_path / "b"),
        start(
            "train", "desk", "--data", str(export), "--text-column", "description", data_dir=tmp_path / "c"
        ),
        start(
            "train",
            "desk",
            "--data",
            str(export),
            "--text-column",
            "subject,description",
            "--label-column",
            "category",
            "--json",
            data_dir=tmp_path / "d",
        ),
    )
    columns = "(columns: ticket_id, subject, description, category)"
    for result, expected in (
        (
            plain,
            f"error: {export}: the first row looks like a header (ticket_id, subject, description, category) "
            "and the first column is not a label column: 301 distinct labels for 301 documents, 301 of them "
            "on one document only (ids, not classes a model can learn). A Comprehend CSV has no header and "
            "its label first; to read this file by its header, name its columns: "
            "--text-column subject,description --label-column category",
        ),
        (
            label_only,
            "error: no text column: name the column(s) holding the text with --text-column, "
            f"e.g. --text-column subject,description {columns}",
        ),
        (
            text_only,
            "error: no label column: name the column holding the labels with --label-column, "
            f"e.g. --label-column category {columns}",
        ),
    ):
        assert refused(result).strip() == expected
    trained = one_json_document(ok(both))
    assert trained["labels"] == TICKET_LABELS
    assert trained["documents"]["train"] + trained["documents"]["test"] == 300
    assert "Warning" not in both.stderr
    for data_dir in ("a", "b", "c"):  # nothing stored
        assert json.loads(ok(run("classifiers", "--json", data_dir=tmp_path / data_dir))) == []


def test_library_warnings_never_reach_the_terminal(tmp_path):
    """40 documents with 25 labels: scikit-learn warned six times (a UserWarning with a source
    line each) that there are many classes; tagloop's own warning says what matters."""
    labels = [f"PAIR{i // 2}" for i in range(30)] + [f"ONE{i}" for i in range(10)]
    data = write_tickets(
        tmp_path / "small.csv",
        [[label, f"text {i} about {label.lower()} things"] for i, label in enumerate(labels)],
    )
    result = run("train", "small", "--data", str(data), data_dir=tmp_path / "data")
    ok(result)
    assert "Warning" not in result.stderr and "sklearn" not in result.stderr
    assert "warning: 25 labels have fewer than 10 documents" in result.stderr


def test_rejected_rows_beyond_fifty_are_counted_and_all_go_to_the_errors_file(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("NETWORK,vpn down\n" + "".join(f"BAD{i},\n" for i in range(300)))
    listed, filed = finish(
        start("train", "desk", "--data", str(data), data_dir=tmp_path / "a"),
        start(
            "train",
            "desk",
            "--data",
            str(data),
            "--errors",
            str(tmp_path / "rejected.txt"),
            data_dir=tmp_path / "b",
        ),
    )
    lines = refused(listed).splitlines()
    assert lines[0].startswith(f"error: {data}: 300 rows rejected")
    assert lines[1:51] == [f"  {data}:{line}: empty text" for line in range(2, 52)]
    assert lines[51:] == [
        "  ... and 250 more: only the first 50 rejected rows are shown here; --errors FILE writes every one "
        "to a file"
    ]
    assert refused(filed).splitlines()[-1] == f"  every rejected row is in {tmp_path / 'rejected.txt'}"
    written = (tmp_path / "rejected.txt").read_text().splitlines()
    assert written == [f"{data}:{line}: empty text" for line in range(2, 302)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rejected")] == []  # no temporary left


def test_serve_refuses_a_bad_address_in_one_line(tmp_path):
    """Was a 97-line traceback (--port 70000), or uvicorn's log and `make: *** Error 3`."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out_of_range, in_use, no_host = finish(
            start("serve", "--port", "70000", data_dir=tmp_path / "a"),
            start("serve", "--port", str(port), data_dir=tmp_path / "b"),
            start("serve", "--host", "no-such-host.invalid", data_dir=tmp_path / "c"),
        )
    for result, expected in (
        (out_of_range, "error: --port must be between 1 and 65535, not 70000"),
        (
            in_use,
            f"error: cannot listen on 127.0.0.1:{port}: it is in use (another server is running there?); "
            "choose another with --port (make run PORT=...)",
        ),
        (no_host, "error: cannot listen on host 'no-such-host.invalid': "),
    ):
        stderr = refused(result)
        assert stderr.startswith(expected), stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert result.returncode == 1


def test_bad_option_values_are_refused(trained):
    data_dir = trained[0]
    status, top, limit = finish(
        start("jobs", "--status", "bogus", data_dir=data_dir),
        start("classify", "desk", "printer jammed", "--top", "-1", data_dir=data_dir),
        start("jobs", "--limit", "0", data_dir=data_dir),
    )
    assert refused(status).strip() == (
        "error: unknown job status 'bogus': use one of SUBMITTED, IN_PROGRESS, COMPLETED, FAILED, "
        "STOP_REQUESTED, STOPPED"
    )
    assert refused(top).strip() == "error: --top must be 0 (every class) or more, not -1"
    assert refused(limit).strip() == "error: --limit must be 1 or more, not 0"
    every, three = finish(
        start("classify", "desk", "printer jammed", "--top", "0", "--json", data_dir=data_dir),
        start("classify", "desk", "printer jammed", "--top", "3", data_dir=data_dir),
    )
    assert len(one_json_document(ok(every))["Classes"]) == 6
    assert len(ok(three).strip().split("\t")) == 3


def on_a_terminal(*args: str, data_dir: Path, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run tagloop with stdin and stdout on an 80-column terminal (a pty), stderr on a pipe;
    ``stdin`` is typed once stderr has said something (or at once if it is not expected to)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    environment |= {"COLUMNS": "80", "LINES": "24", "TERM": "xterm"}
    process = subprocess.Popen(
        [*COMMAND, "--data-dir", str(data_dir), *args],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=environment,
    )
    os.close(slave)
    output = b""
    errors = b""
    try:
        if stdin is not None:
            ready, _, _ = select.select([process.stderr], [], [], 120)  # a bound, not a timing check
            assert ready, "nothing on stderr"
            errors += os.read(process.stderr.fileno(), 65536)
            os.write(master, stdin)
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            assert ready, "no output"
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
        errors += process.stderr.read()
        process.wait(timeout=60)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode()).replace("\r\n", "\n")
    return process.returncode, text, errors.decode()


def test_classify_on_a_terminal_says_it_reads_stdin(trained):
    """Was a silent wait for input."""
    status, output, errors = on_a_terminal(
        "classify", "desk", data_dir=trained[0], stdin=b"the printer is jammed\n\x04"
    )
    assert status == 0, errors
    assert errors.startswith("reading documents from stdin, one per line; end with Ctrl-D")
    assert output.strip().splitlines()[-1].startswith("HARDWARE:")


def test_ids_are_shown_whole_and_taken_by_any_unique_prefix(trained):
    """Was `3784bf…` at 80 columns, then `no job '3784bf'`."""
    data_dir = trained[0]
    jobs = json.loads(ok(run("jobs", "--json", data_dir=data_dir)))
    assert len(jobs) >= 2
    status, table, errors = on_a_terminal("jobs", data_dir=data_dir)
    assert status == 0, errors
    assert max(len(line) for line in table.splitlines()) <= 80
    for job in jobs:
        assert job["id"] in table
    first = jobs[0]["id"]
    shown, stopped = finish(
        start("jobs", "show", first[:6], "--json", data_dir=data_dir),
        start("jobs", "show", "zz", data_dir=data_dir),
    )
    assert one_json_document(ok(shown))["id"] == first
    assert refused(stopped).strip() == "error: no job 'zz'"

    for name in ("first-key", "second-key"):
        ok(run("keys", "create", "--name", name, data_dir=data_dir))
    keys = json.loads(ok(run("keys", "list", "--json", data_dir=data_dir)))
    status, table, _ = on_a_terminal("keys", "list", data_dir=data_dir)
    assert status == 0 and all(key["access_key_id"] in table for key in keys)
    revoked, ambiguous = finish(
        start("keys", "revoke", keys[0]["access_key_id"][:8], "--json", data_dir=data_dir),
        start("keys", "revoke", "TL", data_dir=data_dir),
    )
    assert one_json_document(ok(revoked))["revoked_at"] is not None
    ids = ", ".join(sorted(key["access_key_id"] for key in keys))
    assert (
        refused(ambiguous).strip()
        == f"error: 'TL' is the start of several access key ids ({ids}): give more characters"
    )


def test_classifiers_and_versions_are_deleted_unless_served(tmp_path, tickets):
    data = write_tickets(tmp_path / "tickets.csv", tickets)
    data_dir = tmp_path / "data"
    for _ in range(2):
        ok(run("train", "desk", "--data", str(data), data_dir=data_dir))
    ok(run("endpoints", "create", "help", "--classifier", "desk", "--version", "v1", data_dir=data_dir))
    version, classifier = finish(
        start("versions", "delete", "desk", "v1", data_dir=data_dir),
        start("classifiers", "delete", "desk", data_dir=data_dir),
    )
    assert refused(version).strip() == (
        "error: version v1 is served by endpoint(s) help: move or delete the endpoint(s) first"
    )
    assert refused(classifier).strip() == (
        "error: classifier 'desk' is served by endpoint(s) help: delete the endpoint(s) first"
    )
    deleted = run("versions", "delete", "desk", "v2", data_dir=data_dir)
    assert ok(deleted) == "" and deleted.stderr.strip() == "deleted desk v2"
    assert [v["version"] for v in json.loads(ok(run("versions", "desk", "--json", data_dir=data_dir)))] == [
        "v1"
    ]
    ok(run("endpoints", "delete", "help", data_dir=data_dir))
    deleted = one_json_document(ok(run("classifiers", "delete", "desk", "--json", data_dir=data_dir)))
    assert deleted == {"classifier": "desk", "versions": 1, "documents": 828}
    listed, missing = finish(
        start("classifiers", "--json", data_dir=data_dir),
        start("versions", "delete", "desk", "v1", data_dir=data_dir),
    )
    assert json.loads(ok(listed)) == []
    assert refused(missing).strip() == "error: no classifier named 'desk'"
    assert not any((data_dir / "artifacts" / "models").iterdir())


def table_rows(output: str, title: str) -> list[list[str]]:
    """The cells of the body rows of the Rich table printed under ``title``."""
    lines = output[output.index(title) :].splitlines()
    body = lines[lines.index(next(line for line in lines if line.startswith("┡"))) + 1 :]
    rows = []
    for line in body:
        if line.startswith("└"):
            break
        rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_a_version_shows_per_label_figures_and_its_confusion_matrix(trained):
    """Was the list's one row."""
    data_dir = trained[0]
    shown, as_json = finish(
        start("versions", "desk", "v1", data_dir=data_dir),
        start("versions", "desk", "v1", "--json", data_dir=data_dir),
    )
    output, full = ok(shown), one_json_document(ok(as_json))
    assert output.startswith("desk v1: TRAINED, MULTI_CLASS, 6 labels, 372 training and 42 test documents")
    per_label = table_rows(output, "per label")
    assert [row[0] for row in per_label] == TICKET_LABELS
    for label, precision, recall, f1, support in per_label:
        figures = full["per_label"][label]
        assert (precision, recall, f1) == tuple(f"{figures[k]:.4f}" for k in ("precision", "recall", "f1"))
        assert int(support) == figures["support"]
    matrix = [
        [0 if cell == "." else int(cell) for cell in row[2:]]
        for row in table_rows(output, "confusion matrix")
    ]
    assert matrix == full["confusion_matrix"]["confusion_matrix"]
    assert sum(matrix[i][i] for i in range(6)) / 42 == pytest.approx(full["metrics"]["Accuracy"])


def test_a_confusion_matrix_of_many_labels_shows_the_largest(capsys):
    from tagloop import cli

    labels = [f"LABEL{i:02d}" for i in range(25)]
    matrix = [
        [(i + 1) * 2 if i == j else (1 if j == (i + 1) % 25 else 0) for j in range(25)] for i in range(25)
    ]
    cli._confusion_matrix(labels, matrix)
    output = capsys.readouterr().out
    assert "(the 20 labels with most test documents of 25; --json for all)" in " ".join(output.split())
    rows = table_rows(output, "confusion matrix")
    assert [row[1] for row in rows] == labels[5:]  # the most documents: the last 20
    assert all(len(row) == 22 for row in rows)


def test_evaluate_writes_its_errors_and_classify_echoes_its_input(trained, tickets, tmp_path):
    data_dir = trained[0]
    holdout = write_tickets(tmp_path / "holdout.csv", [*tickets[-60:], ("FACILITIES", "the lift is stuck")])
    errors = tmp_path / "errors.jsonl"
    evaluated, echoed, echoed_json = finish(
        start(
            "evaluate", "desk", "--data", str(holdout), "--errors", str(errors), "--json", data_dir=data_dir
        ),
        start(
            "classify", "desk", "--with-text", data_dir=data_dir, stdin="printer\tjammed\n\nmy vpn drops\n"
        ),
        start("classify", "desk", "printer jammed", "--with-text", "--json", data_dir=data_dir),
    )
    result = one_json_document(ok(evaluated))
    records = [json.loads(line) for line in errors.read_text().splitlines()]
    wrong = round((1 - result["metrics"]["Accuracy"]) * result["documents"])
    assert len(records) == wrong and wrong >= 1
    assert f"{wrong} misclassified document(s) written to {errors}" in evaluated.stderr
    assert records[-1] == {
        "line": 61,
        "text": "the lift is stuck",
        "labels": ["FACILITIES"],
        "predicted": records[-1]["predicted"],
        "scores": records[-1]["scores"],
    }
    for record in records:
        assert record["predicted"] != record["labels"] and set(record["predicted"]) <= set(record["scores"])
        assert record["text"] == ([*tickets[-60:], ("", "the lift is stuck")][record["line"] - 1][1])
    assert result["warnings"] == ["labels the model was not trained on (it never predicts them): FACILITIES"]

    assert echoed.returncode == 1  # the empty line cannot be classified: said so, in its place
    first, empty, vpn = echoed.stdout.splitlines()
    assert first.startswith("HARDWARE:") and first.endswith("\tprinter jammed")  # a tab in the text: a space
    assert empty == "ERROR\tempty text\t"
    assert vpn.startswith("NETWORK:") and vpn.endswith("\tmy vpn drops")
    document = one_json_document(ok(echoed_json))
    assert document["Text"] == "printer jammed" and document["Classes"][0]["Name"] == "HARDWARE"


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
    ok(run("train", "desk", "--data", str(data), data_dir=data_dir))  # a trained version to batch with
    source = tmp_path / "in.txt"
    source.write_text("printer jammed\n", encoding="utf-8")
    batch = run(
        "batch",
        "desk",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "out"),
        "--background",
        data_dir=data_dir,
    )
    assert ok(batch).strip() and "warning: no worker has been seen" in batch.stderr

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


def test_endpoint_routing_and_review_feedback(tmp_path, tickets):
    data_dir = tmp_path / "data"
    ok(run("train", "desk", "--data", str(write_tickets(tmp_path / "t.csv", tickets)), data_dir=data_dir))
    ok(run("endpoints", "create", "desk", "--classifier", "desk", data_dir=data_dir))
    shown = one_json_document(ok(run("endpoints", "routing", "desk", "--json", data_dir=data_dir)))
    assert shown["active"] is False and shown["required"] == 1
    changed = one_json_document(
        ok(
            run(
                "endpoints",
                "routing",
                "desk",
                "--threshold",
                "0.6",
                "--audit",
                "0.05",
                "--label",
                "NETWORK",
                "--required",
                "2",
                "--lifetime",
                "3600",
                "--json",
                data_dir=data_dir,
            )
        )
    )
    assert (changed["threshold"], changed["audit"], changed["labels"], changed["required"]) == (
        0.6,
        0.05,
        ["NETWORK"],
        2,
    )
    kept = one_json_document(
        ok(run("endpoints", "routing", "desk", "--margin", "0.1", "--json", data_dir=data_dir))
    )
    assert (
        kept["threshold"] == 0.6 and kept["margin"] == 0.1 and kept["lifetime_seconds"] == 3600
    )  # others kept
    table = ok(run("endpoints", "routing", "desk", "--threshold", "none", data_dir=data_dir))
    assert "threshold" in table and "margin" in table
    assert "threshold: 3.0 is not between 0 and 1" in refused(
        run("endpoints", "routing", "desk", "--threshold", "3", data_dir=data_dir)
    )
    assert "required" in refused(run("endpoints", "routing", "desk", "--required", "9", data_dir=data_dir))
    off = one_json_document(ok(run("endpoints", "routing", "desk", "--off", "--json", data_dir=data_dir)))
    assert off["active"] is False and off["threshold"] is None and off["labels"] == []

    whole = tmp_path / "feedback.json"
    whole.write_text(json.dumps({"classifier": "desk", "sentences": ["vpn drops", "printer jammed"]}))
    lines = tmp_path / "feedback.jsonl"
    lines.write_text('"refund please"\n{"sentence": "cannot log in"}\n')
    made = one_json_document(ok(run("review", "feedback", "desk", str(whole), "--json", data_dir=data_dir)))
    assert len(made["task_ids"]) == 2 and made["version"] == "v1"
    printed = ok(run("review", "feedback", "desk", str(lines), data_dir=data_dir))
    assert printed.startswith("2 feedback tasks for desk")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"classifier": "news", "sentences": ["x"]}))
    assert "'news'" in refused(run("review", "feedback", "desk", str(other), data_dir=data_dir))
    empty = tmp_path / "empty.jsonl"
    empty.write_text('"fine"\n"  "\n')
    assert "sentences[1]" in refused(run("review", "feedback", "desk", str(empty), data_dir=data_dir))


def test_users_are_created_listed_disabled_enabled_and_given_a_new_password(tmp_path):
    data_dir = tmp_path / "data"
    created = one_json_document(
        ok(run("users", "create", "ana", "--role", "moderator", "--password-stdin", "--json",
               data_dir=data_dir, stdin="correct horse\n"))
    )  # fmt: skip
    assert (created["name"], created["role"], created["disabled"]) == ("ana", "moderator", False)
    duplicate, no_terminal, bad_role, unknown, disabled = finish(
        start("users", "create", "ana", "--password-stdin", data_dir=data_dir, stdin="correct horse\n"),
        start("users", "create", "bob", data_dir=data_dir),  # stdin is not a terminal: no prompt
        start("users", "create", "bob", "--role=root", "--password-stdin", data_dir=data_dir, stdin="x" * 8),
        start("users", "disable", "zed", data_dir=data_dir),
        start("users", "disable", "ana", "--json", data_dir=data_dir),
    )
    assert "exists already" in refused(duplicate)
    assert "--password-stdin" in refused(no_terminal)
    assert "role must be one of reviewer, moderator, admin" in refused(bad_role)
    assert "no user 'zed'" in refused(unknown)
    assert one_json_document(ok(disabled))["disabled"]
    listed = json.loads(ok(run("users", "list", "--json", data_dir=data_dir)))
    assert [(user["name"], user["disabled"]) for user in listed] == [("ana", True)]
    assert "password" not in json.dumps(listed)
    for result in finish(
        start("users", "enable", "ana", data_dir=data_dir),
        start("users", "passwd", "ana", "--password-stdin", data_dir=data_dir, stdin="battery staple\n"),
    ):
        ok(result)
    from tagloop.services.users import UserService
    from tagloop.storage.database import Database

    database = Database(f"sqlite:///{data_dir / 'tagloop.db'}")
    try:
        assert UserService(database).login("ana", "battery staple", "127.0.0.1").session is not None
    finally:
        database.dispose()
