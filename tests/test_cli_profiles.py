"""`tagloop profiles ...` and `tagloop train --profile` run as processes on a data folder: the
documented recipe from a shell, one JSON document on stdout with --json, rejected rows naming
member and line on stderr, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]


def tagloop(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
        timeout=120,
    )


def test_the_recipe_from_a_shell(tmp_path, issue_archive):
    data, archive = tmp_path / "data", issue_archive(rows=30)
    added = tagloop(
        data,
        "profiles", "add", "issues", "bugs",
        "--query", "SELECT type, summary, description FROM issue",
        "--where", "type=Bug",
        "--text-column", "summary,description",
        "--label-from", "member",
        "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["spec"]["label_from"] == "member"
    tried = tagloop(data, "profiles", "try", "issues", "bugs", str(archive), "--json")
    assert tried.returncode == 0, tried.stderr
    found = json.loads(tried.stdout)
    assert found["label_counts"] == {"HADOOP": 15, "KAFKA": 15, "SPARK": 15} and found["filtered"] == 45
    trained = tagloop(data, "train", "issues", "--profile", "bugs", "--data", str(archive), "--json")
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert result["labels"] == ["HADOOP", "KAFKA", "SPARK"] and result["status"] == "TRAINED"
    shown = tagloop(data, "profiles", "show", "issues", "bugs")
    assert "query: SELECT type, summary, description FROM issue" in shown.stdout


def test_a_json_profile_file_and_rejected_rows_on_stderr(tmp_path):
    data = tmp_path / "data"
    spec = tmp_path / "teams.json"
    spec.write_text(json.dumps({"format": "lines", "label_from": "member", "members": ["*.txt"]}))
    archive = tmp_path / "teams.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("hardware.txt", "".join(f"printer {i} jams\n" for i in range(12)))
        handle.writestr("network.txt", b"vpn down\n\xff\n")
        handle.writestr("network.txt.bak", "ignored\n")
    assert tagloop(data, "profiles", "add", "desk", "teams", "--from-file", str(spec)).returncode == 0
    trained = tagloop(data, "train", "desk", "--profile", "teams", "--data", str(archive))
    assert trained.returncode == 1
    assert f"{archive}:network.txt:2: invalid UTF-8" in trained.stderr
    bad = tagloop(
        data, "profiles", "add", "desk", "teams", "--query", "DELETE FROM issue", "--format", "sqlite"
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: query must read") and bad.stdout == ""
