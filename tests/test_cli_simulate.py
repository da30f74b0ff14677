"""`tagloop simulate` run as a process on small labelled files: the --json shape, the plot, the
table, and one-line errors for bad options and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tagloop.domain.strategies import STRATEGIES

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]
LABELS = ["ALPHA", "BRAVO", "CHARLIE"]


def write_set(path: Path, documents: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(documents):
        label = LABELS[i % 3]
        words = [f"{label.lower()}{w}" for w in rng.choice(["fox", "owl", "elk", "yak"], 2, replace=False)]
        words += [str(w) for w in rng.choice(["please", "help", "today", "again", "thanks"], 3)]
        if rng.random() < 0.3:
            words.append(f"{LABELS[(i + 1) % 3].lower()}fox")
        lines.append(f"{label},{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("simulate")
    write_set(root / "train.csv", 90, 1)
    write_set(root / "test.csv", 45, 2)
    return root / "train.csv", root / "test.csv", root


def simulate(tmp: Path, *args: str) -> subprocess.Popen[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    return subprocess.Popen(
        [*COMMAND, "--data-dir", str(tmp / "data"), "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def finish(*started: subprocess.Popen[str]) -> list[tuple[int, str, str]]:
    results = []
    for process in started:
        out, err = process.communicate(timeout=600)
        results.append((process.returncode, out, err))
    return results


def test_simulate_json_plot_table_and_errors(files):
    train, test, root = files
    common = ["--data", str(train), "--test", str(test), "--initial-per-label", "2", "--batch", "10"]
    plot = root / "curve.svg"
    (
        (as_json, out, err),
        (as_table, table, _),
        (bad_name, _, name_err),
        (no_file, _, file_err),
        (
            bad_batch,
            _,
            batch_err,
        ),
        (self_trained, self_out, self_err),
    ) = finish(
        simulate(
            root,
            *common,
            "--strategy",
            "margin,random",
            "--budget",
            "36",
            "--repeats",
            "2",
            "--json",
            "--plot",
            str(plot),
        ),
        simulate(root, *common, "--strategy", "entropy,badge", "--budget", "26", "--repeats", "1"),
        simulate(root, *common, "--strategy", "margin,best"),
        simulate(root, "--data", str(root / "missing.csv"), "--test", str(test)),
        simulate(root, *common[:4], "--batch", "0"),
        simulate(
            root,
            *common,
            "--strategy",
            "random",
            "--budget",
            "16",
            "--repeats",
            "1",
            "--self-training",
            "--json",
        ),
    )
    (helped, help_text, _) = finish(simulate(root, "--help"))[0]
    assert helped == 0
    assert all(name in " ".join(help_text.split()) for name in STRATEGIES)  # the help names them all
    assert as_json == 0, err
    document = json.loads(out)  # exactly one JSON document on stdout
    assert set(document) == {"mode", "documents", "plan", "full", "recipe", "strategies"}
    assert document["recipe"]["self_training"] is False
    assert self_trained == 0, self_err
    assert json.loads(self_out)["recipe"]["self_training"] is True
    assert document["documents"] == {"train": 90, "test": 45, "labels": 3}
    assert document["plan"]["strategies"] == ["margin", "random"]
    for figures in document["strategies"].values():
        assert [p["labels"] for p in figures["steps"]] == [6, 16, 26, 36]
        assert len(figures["repeats"]) == 2
        assert set(figures["to_reach"]) == {"95%", "99%"}
        assert set(figures["to_reach"]["95%"]) >= {"mean", "std", "min", "max", "reached", "repeats", "each"}
    root_element = ET.parse(plot).getroot()
    assert root_element.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root_element.findall("{http://www.w3.org/2000/svg}polyline")) == 2
    assert "curves written to" in err

    assert as_table == 0
    assert "full data: 90 labels" in table and "entropy" in table and "badge" in table

    for status, message, expected in (
        (bad_name, name_err, "unknown strategy 'best'"),
        (no_file, file_err, "no such file"),
        (bad_batch, batch_err, "batch"),
    ):
        assert status == 1, message
        assert message.startswith("error: ") and expected in message and "Traceback" not in message
    assert not (root / "data").exists() or not any((root / "data").iterdir())  # nothing stored
