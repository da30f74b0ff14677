"""ReportService on a real trained classifier (SQLite + files): the test predictions training
stores, what a report gathers from them, older versions without them, and the drawings."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagloop.app import Tagloop
from tagloop.domain.test_predictions import TEST_PREDICTIONS, TestPredictions
from tagloop.errors import NotFound, ResourceUnavailable
from tagloop.services.reports import compare_figures, version_figures
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.loops import IterationRepository, LoopRepository
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository


@pytest.fixture(scope="module")
def tagloop(tmp_path_factory, tickets) -> Iterator[Tagloop]:
    """Classifier `desk` with versions v1 and v2 trained on the demo tickets."""
    root = tmp_path_factory.mktemp("reports")
    data = root / "tickets.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    instance = Tagloop(Settings(data_dir=root / "data"))
    instance.training.train(TrainRequest(classifier="desk", data=str(data)))
    instance.training.train(TrainRequest(classifier="desk", data=str(data)))
    yield instance
    instance.close()


def _stored(tagloop: Tagloop, version: str) -> Path:
    with tagloop.database.reading() as session:
        classifier = ClassifierRepository(session).get("desk")
        row = ModelVersionRepository(session).find(classifier.id, version)
        assert row is not None
        return Path(tagloop.artifacts.path(f"models/{row.classifier_id}/{row.id}/{TEST_PREDICTIONS}"))


def test_training_stores_the_scored_test_documents_that_agree_with_the_metrics(tagloop):
    path = _stored(tagloop, "v1")
    kept = TestPredictions.from_bytes(path.read_bytes())
    summary = tagloop.catalog.version("desk", "v1")
    assert len(kept) == summary["documents"]["test"] == 42
    assert kept.correct().mean() == pytest.approx(summary["metrics"]["Accuracy"])
    matrix = summary["confusion_matrix"]["confusion_matrix"]
    labels = summary["confusion_matrix"]["labels"]
    for i, true in enumerate(labels):
        for j, predicted in enumerate(labels):
            assert len(kept.cell(true, predicted)) == matrix[i][j]
    assert kept.top_scores.sum(axis=1) == pytest.approx(1.0, abs=1e-4)  # 6 labels: every score kept


def test_a_report_gathers_the_version_and_its_scored_documents(tagloop):
    report = tagloop.reports.version_report("desk")  # the newest trained: v2
    assert (report.classifier, report.version, report.notes) == ("desk", "v2", [])
    assert report.metrics == tagloop.catalog.version("desk", "v2")["metrics"]
    mistakes = report.misclassified
    assert len(mistakes) == round(42 * (1 - report.metrics["Accuracy"]))
    assert all(doc.gold != doc.predicted and doc.text for doc in mistakes)
    best = [doc.scores[0][1] for doc in mistakes]
    assert best == sorted(best, reverse=True)  # the most confident mistakes first
    assert all(doc.scores[0][0] == doc.predicted[0] for doc in mistakes)
    assert set(report.features) == set(report.summary["labels"])
    assert any(term in ("password", "reset", "access") for term, _ in report.features["ACCESS"][:3])
    assert report.iterations == [] and report.endpoints == [] and not report.champion
    assert len(tagloop.reports.version_report("desk", "v2", misclassified=2, features=0).misclassified) == 2
    as_json = report.as_dict()
    assert as_json["test_documents"] == 42 and 0 <= as_json["calibration"]["expected_calibration_error"] <= 1


def test_a_cell_lists_its_test_documents(tagloop):
    report = tagloop.reports.version_report("desk", "v1")
    doc = report.misclassified[0]
    cell = tagloop.reports.cell_documents("desk", "v1", doc.gold[0], doc.predicted[0])
    assert doc in cell
    assert all(d.gold == doc.gold and d.predicted == doc.predicted for d in cell)
    assert tagloop.reports.cell_documents("desk", "v1", "ACCESS", "NO-SUCH-LABEL") == []
    with pytest.raises(NotFound):
        tagloop.reports.cell_documents("desk", "v9", "ACCESS", "ACCESS")


def test_a_version_trained_before_test_predictions_were_stored_gets_them(tagloop):
    path = _stored(tagloop, "v1")
    before = path.read_bytes()
    path.unlink()
    report = tagloop.reports.version_report("desk", "v1")
    assert report.notes == [
        "the test documents were scored for this report (the version was trained before test "
        "predictions were stored)"
    ]
    again = TestPredictions.from_bytes(path.read_bytes())  # stored for next time
    assert again.predicted == TestPredictions.from_bytes(before).predicted
    assert tagloop.reports.version_report("desk", "v1").notes == []
    path.write_bytes(b"damaged")  # an unreadable file is made again too
    assert len(tagloop.reports.version_report("desk", "v1").predictions) == 42


def test_without_its_model_a_report_says_what_is_missing(tagloop, tmp_path):
    with tagloop.database.reading() as session:
        classifier = ClassifierRepository(session).get("desk")
        row = ModelVersionRepository(session).find(classifier.id, "v1")
        model = Path(row.artifact_path)
    path = _stored(tagloop, "v1")
    saved_model, saved_predictions = model.read_bytes(), path.read_bytes()
    other = Tagloop(tagloop.settings)  # a fresh model cache: the model must be read
    try:
        model.unlink()
        path.unlink()
        report = other.reports.version_report("desk", "v1")
        assert report.predictions is None and report.misclassified == [] and report.features == {}
        assert [note.split(":")[0] for note in report.notes] == [
            "no scored test documents",
            "no strongest features",
        ]
        assert [f.key for f in version_figures(report)] == ["per_label", "confusion"]
        with pytest.raises(ResourceUnavailable):
            other.reports.cell_documents("desk", "v1", "ACCESS", "ACCESS")
    finally:
        other.close()
        model.write_bytes(saved_model)
        path.write_bytes(saved_predictions)


def test_the_figures_of_a_version_and_of_two(tagloop):
    with tagloop.database.transaction() as session:
        classifier = ClassifierRepository(session).get("desk")
        versions = ModelVersionRepository(session)
        v1, v2 = versions.find(classifier.id, "v1"), versions.find(classifier.id, "v2")
        loop = LoopRepository(session).add(classifier.id, v2.id, {"metric": "F1Score"})
        iterations = IterationRepository(session)
        for champion, challenger, decision in ((None, v1, "promoted"), (v1, v2, "promoted")):
            iteration = iterations.add(
                loop,
                "manual",
                status="COMPLETED",
                champion_version_id=champion.id if champion else None,
                challenger_version_id=challenger.id,
                champion_metrics=champion.metrics if champion else None,
                challenger_metrics=challenger.metrics,
                decision=decision,
            )
            iteration.rule = {"metric": "F1Score"}
    tagloop.endpoints.create("desk-live", "desk", "v2")
    try:
        second = tagloop.reports.version_report("desk", "v2")
        assert second.champion and second.endpoints == ["desk-live"]
        assert [(p.promoted, p.challenger) for p in second.iterations] == [
            (True, pytest.approx(v1.metrics["F1Score"])),
            (True, pytest.approx(v2.metrics["F1Score"])),
        ]
        drawn = version_figures(second)
        assert [f.key for f in drawn] == ["per_label", "confusion", "reliability", "scores", "iterations"]
        for figure in drawn:
            root = ET.fromstring(figure.svg)
            assert root.find("{http://www.w3.org/2000/svg}title").text == figure.alt
            assert "desk" in figure.alt
        compared = compare_figures(tagloop.reports.version_report("desk", "v1"), second)
        assert [f.key for f in compared] == ["compare"]
    finally:
        tagloop.endpoints.delete("desk-live")
