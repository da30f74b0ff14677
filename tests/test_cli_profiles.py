"""`tagloop profiles ...` and `tagloop train --profile` run as processes on a data folder: the
documented recipe from a shell, one JSON document on stdout with --json, rejected rows naming
member and line on stderr, exit statuses."""

from __future__ import annotations

import json
import os
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


def readme_recipe() -> str:
    """The shell block of the README's sqlite-zip recipe, as written there."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- recipe: issues-zip", 1)[1].split("```sh\n", 1)[1]
    return block.split("```", 1)[0]


def test_the_readme_recipe_runs_as_written(tmp_path, issue_archive):
    archive = issue_archive(rows=30)
    assert archive.name == "issues.zip"
    script = "set -e\n" + 'tagloop() { "$@"; }\n'.replace(
        '"$@"', " ".join(COMMAND) + ' --data-dir "$DATA" "$@"'
    )
    ran = subprocess.run(
        ["bash", "-c", script + readme_recipe()],
        cwd=archive.parent,
        env=os.environ | {"DATA": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert "saved profile bugs of issues" in ran.stdout
    assert "labels: HADOOP (15), KAFKA (15), SPARK (15)" in ran.stdout  # try: half the rows are bugs
    assert "trained issues v1: 3 labels" in ran.stdout
    shown = tagloop(tmp_path / "data", "versions", "show", "issues", "v1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["labels"] == ["HADOOP", "KAFKA", "SPARK"]


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
