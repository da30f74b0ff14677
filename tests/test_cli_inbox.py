"""`tagloop inbox ...` run as processes: add, scan --run, status, list, disable, remove; one
JSON document on stdout with --json, one-line errors on stderr, exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]


def tagloop(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TAGLOOP_INBOX_STABLE_SECONDS": "3600"},
    )


def test_the_inbox_commands(tmp_path, tickets_csv):
    data_dir, drop = tmp_path / "data", tmp_path / "drop"
    drop.mkdir()
    added = tagloop(data_dir, "inbox", "add", "desk", str(drop), "--deploy", "better", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) | {"created_at": None} == {
        "name": "desk",
        "classifier": "desk",
        "url": str(drop),
        "profile": None,
        "train": "replace",
        "deploy": "better",
        "endpoint": None,
        "enabled": True,
        "files": dict.fromkeys(("seen", "claimed", "training", "deploying", "processed", "failed"), 0),
        "last_error": None,
        "created_at": None,
        "scanned_at": None,
    }
    wrong = tagloop(data_dir, "inbox", "add", "desk", str(drop), "--name", "other", "--deploy", "always")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.strip() == "error: deploy: 'always' is not one of auto, better, never"

    (drop / "tickets.csv").write_bytes(tickets_csv.read_bytes())
    (drop / "half.csv").write_text("A,still uploading\n")
    (drop / "bad.csv").write_text("NETWORK,ok\n,\n")
    for name in ("tickets.csv", "bad.csv"):
        (drop / f"{name}.ready").touch()
    scanned = tagloop(data_dir, "inbox", "scan", "--run", "--json")
    assert scanned.returncode == 1  # a file failed: the exit status says so
    found = json.loads(scanned.stdout)
    assert sorted(found["inboxes"][0]["claimed"]) == ["bad.csv", "tickets.csv"]
    assert found["inboxes"][0]["seen"] == ["half.csv"] and found["jobs_run"] == 2
    by_name = {f["name"]: f for f in found["files"]}
    assert by_name["tickets.csv"]["moved_to"] == "processed/tickets.csv"
    assert by_name["bad.csv"]["error"] == "1 row rejected (line 2: empty text)"

    status = tagloop(data_dir, "inbox", "status", "desk", "--state", "failed", "--json")
    assert [f["name"] for f in json.loads(status.stdout)["recent_files"]] == ["bad.csv"]
    human = tagloop(data_dir, "inbox", "status")
    assert "1 seen, 1 processed, 1 failed" in human.stdout and "processed/tickets.csv" in human.stdout
    assert "last error: bad.csv: 1 row rejected (line 2: empty text)" in human.stdout
    assert "desk (disabled)" in tagloop(data_dir, "inbox", "disable", "desk").stdout
    removed = tagloop(data_dir, "inbox", "remove", "desk")
    assert removed.returncode == 0 and "its folder is left as it is" in removed.stdout
    gone = tagloop(data_dir, "inbox", "remove", "desk")
    assert (gone.returncode, gone.stderr.strip()) == (1, "error: no inbox named 'desk'")
    assert sorted(p.name for p in drop.iterdir()) == ["failed", "half.csv", "processed"]
