"""`tagloop report` and `tagloop versions C V` run as processes: one JSON document with --json,
readable text without, the HTML file with --html, one-line refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from tests.test_cli import finish, ok, one_json_document, refused, start, table_rows

from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tickets) -> Path:
    """Classifier `desk`, versions v1 and v2, trained on the demo tickets."""
    root = tmp_path_factory.mktemp("cli-report")
    data = root / "tickets.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    tagloop = Tagloop(Settings(data_dir=root / "data"))
    try:
        for _ in range(2):
            tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    finally:
        tagloop.close()
    return root / "data"


def test_report_as_json_and_text(data_dir):
    as_json, as_text, compared = finish(
        start("report", "desk", "--json", data_dir=data_dir),
        start("report", "desk", "--version", "v1", data_dir=data_dir),
        start("report", "desk", "--version", "v1", "--compare", "v2", "--json", data_dir=data_dir),
    )
    found = one_json_document(ok(as_json))
    assert (found["classifier"], found["version"], found["test_documents"]) == ("desk", "v2", 42)
    assert found["summary"]["metrics"]["Accuracy"] == pytest.approx(1 - len(found["misclassified"]) / 42)
    assert set(found["features"]) == set(found["summary"]["labels"])
    assert 0 <= found["calibration"]["expected_calibration_error"] <= 1
    first, second = json.loads(ok(compared))
    assert (first["version"], second["version"]) == ("v1", "v2")

    text = ok(as_text)  # `tagloop versions desk v1`'s text, then what only the report adds
    assert text.startswith("desk v1: TRAINED, MULTI_CLASS, 6 labels")
    for title in ("per label", "confusion matrix", "most often confused", "most confident mistakes"):
        assert title in text
    assert "expected calibration error: " in text
    features = {row[0]: row[1] for row in table_rows(text, "strongest features per label")}
    assert set(features) == set(found["summary"]["labels"]) and "(" in features["ACCESS"]
    assert as_text.stderr.strip() == "plots: add --html FILE"
    _check_most_confused(text)


def _check_most_confused(output: str) -> None:
    """The "most often confused" table lists the matrix's largest off-diagonal cells."""
    rows = table_rows(output, "confusion matrix")
    matrix = [[0 if cell == "." else int(cell) for cell in row[2:]] for row in rows]
    labels = [row[1] for row in rows]
    pairs = table_rows(output, "most often confused")
    assert 1 <= len(pairs) <= 5
    counts = [int(row[2]) for row in pairs]
    off_diagonal = sorted(
        (c for i, row in enumerate(matrix) for j, c in enumerate(row) if i != j and c), reverse=True
    )
    assert counts == off_diagonal[: len(counts)]
    true, predicted = labels.index(pairs[0][0]), labels.index(pairs[0][1])
    assert matrix[true][predicted] == counts[0]
    assert pairs[0][3] == f"{100 * counts[0] / sum(matrix[true]):.1f}%"


def test_report_refusals(data_dir, tmp_path):
    missing, same, nowhere = finish(
        start("report", "desk", "--version", "v9", data_dir=data_dir),
        start("report", "desk", "--version", "v2", "--compare", "v2", data_dir=data_dir),
        start("report", "desk", "--html", str(tmp_path / "no" / "such" / "r.html"), data_dir=data_dir),
    )
    assert refused(missing).strip() == "error: classifier 'desk' has no version 'v9'"
    assert refused(same).strip() == "error: --compare names version v2, the one reported: give another"
    assert refused(nowhere).startswith("error: cannot write ")
    assert not list(tmp_path.iterdir())
