"""Classifying and evaluating through the services; the per-process model cache."""

from __future__ import annotations

import pytest

from tagloop.errors import ArtifactCorrupt, NotFound, ResourceUnavailable
from tagloop.services.training import TrainRequest


@pytest.fixture
def trained(make_tagloop, tickets, write_csv):
    tagloop = make_tagloop()
    train = write_csv([list(row) for row in tickets[:360]], "train.csv")
    test = write_csv([list(row) for row in tickets[360:]], "test.csv")
    result = tagloop.training.train(TrainRequest(classifier="desk", data=str(train), test=str(test)))
    return tagloop, result, test


def test_results_stay_aligned_with_inputs(trained):
    tagloop, _, _ = trained
    _, model = tagloop.predictions.model("desk")
    texts = ["printer jammed", "", "x" * 1_000_001, "refund please", "   "]
    results = list(tagloop.predictions.classify(model, texts, top=2, chunk=2))
    assert len(results) == 5
    assert results[0]["Classes"][0]["Name"] == "HARDWARE" and len(results[0]["Classes"]) == 2
    assert results[1]["Error"]["Message"] == "empty text"
    assert "TAGLOOP_MAX_TEXT_BYTES" in results[2]["Error"]["Message"]
    assert results[2]["Error"]["Code"] == "TextSizeLimitExceededException"
    assert results[3]["Classes"][0]["Name"] == "BILLING"
    assert "Error" in results[4]


def test_evaluate_matches_the_metrics_recorded_at_training(trained):
    tagloop, result, test = trained
    evaluated = tagloop.predictions.evaluate("desk", str(test), "v1")
    assert evaluated["metrics"] == pytest.approx(result["metrics"])
    with pytest.raises(NotFound):
        tagloop.predictions.evaluate("desk", str(test), "v9")


def test_no_trained_version_is_unavailable(make_tagloop, write_csv, tickets):
    tagloop = make_tagloop()
    tagloop.training.submit(TrainRequest(classifier="desk", data=str(write_csv([list(r) for r in tickets]))))
    with pytest.raises(ResourceUnavailable, match="no trained model version"):
        tagloop.predictions.model("desk")


def test_the_model_cache_loads_once_and_checks_the_hash(trained, make_tagloop):
    tagloop, _, _ = trained
    _, first = tagloop.predictions.model("desk")
    _, again = tagloop.predictions.model("desk")
    assert first is again
    path = tagloop.catalog.version("desk", "v1")["artifact"]["path"]
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    fresh = make_tagloop()  # another process: nothing cached
    with pytest.raises(ArtifactCorrupt):
        fresh.predictions.model("desk")


def test_forked_scoring_gives_the_same_results_in_order(trained, tickets):
    tagloop, _, _ = trained
    _, model = tagloop.predictions.model("desk")
    texts = [text for _, text in tickets] + [""]
    alone = list(tagloop.predictions.classify(model, texts, chunk=50, processes=1))
    forked = list(tagloop.predictions.classify(model, texts, chunk=50, processes=2))
    assert forked == alone
    assert len(forked) == len(texts) and "Error" in forked[-1]
