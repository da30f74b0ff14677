"""Classifying and evaluating through the services; the per-process model cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tagloop.domain.records import Mode
from tagloop.errors import ArtifactCorrupt, InvalidRequest, LimitExceeded, NotFound, ResourceUnavailable
from tagloop.services.model_cache import ModelCache
from tagloop.services.training import TrainRequest
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository

TICKET_LABELS = ["ACCESS", "BILLING", "EMAIL", "HARDWARE", "NETWORK", "SOFTWARE"]


@pytest.fixture
def trained(make_tagloop, tickets, write_csv):
    tagloop = make_tagloop()
    train = write_csv([list(row) for row in tickets[:360]], "train.csv")
    test = write_csv([list(row) for row in tickets[360:]], "test.csv")
    result = tagloop.training.train(TrainRequest(classifier="desk", data=str(train), test=str(test)))
    return tagloop, result, test


@pytest.fixture
def multi_label(make_tagloop, multi_label_csv):
    tagloop = make_tagloop()
    tagloop.training.train(TrainRequest(classifier="ml", data=str(multi_label_csv), mode=Mode.MULTI_LABEL))
    return tagloop


def version_rows(tagloop, classifier: str):
    with tagloop.database.reading() as session:
        row = ClassifierRepository(session).get(classifier)
        return {v.name: v for v in ModelVersionRepository(session).list(row.id)}


def test_multi_class_predictions_rank_every_class(trained):
    tagloop, result, _ = trained
    name, model = tagloop.predictions.model("desk")
    assert name == "v1"
    texts = ["printer jammed", "refund please, I was billed twice", "wifi keeps dropping"]
    results = list(tagloop.predictions.classify(model, texts))
    assert [r.labels[0] for r in results] == ["HARDWARE", "BILLING", "NETWORK"]
    for item in results:
        assert item.mode is Mode.MULTI_CLASS and item.error is None
        assert sorted(item.labels) == result["labels"]
        assert all(type(score) is float for score in item.scores)
        assert item.scores == sorted(item.scores, reverse=True)
        assert all(0.0 <= score <= 1.0 for score in item.scores)
        assert sum(item.scores) == pytest.approx(1.0, abs=1e-5)
    top = list(tagloop.predictions.classify(model, texts, top=2))
    assert [r.labels for r in top] == [r.labels[:2] for r in results]
    assert [r.scores[0] for r in top] == pytest.approx([r.scores[0] for r in results])


def test_multi_label_predictions_list_the_assigned_labels(multi_label):
    name, model = multi_label.predictions.model("ml")
    assert name == "v1"
    results = list(
        multi_label.predictions.classify(
            model, ["the router and the dock both fail", "vpn tunnel drops", "keyboard is broken"]
        )
    )
    assert all(item.mode is Mode.MULTI_LABEL and item.error is None for item in results)
    assert set(results[0].labels) == {"HW", "NET"}
    assert results[1].labels[0] == "NET"
    assert results[2].labels[0] == "HW"
    for item in results:
        assert item.scores and item.scores == sorted(item.scores, reverse=True)
        assert all(0.0 <= score <= 1.0 for score in item.scores)
    (best,) = list(multi_label.predictions.classify(model, ["the router and the dock both fail"], top=1))
    assert best.labels == results[0].labels[:1] and best.scores == results[0].scores[:1]


def test_results_stay_aligned_with_inputs(make_tagloop, trained):
    tagloop, _, _ = trained
    _, model = tagloop.predictions.model("desk")
    texts = ["printer jammed", "", "x" * 1_000_001, "refund please", "   ", "vpn down"]
    results = list(tagloop.predictions.classify(model, texts, top=2, chunk=2))
    assert len(results) == len(texts)
    assert results[0].labels[0] == "HARDWARE" and len(results[0].labels) == 2
    assert type(results[1].error) is InvalidRequest and results[1].error.message == "empty text"
    assert results[1].labels == [] and results[1].scores == [] and results[1].mode is Mode.MULTI_CLASS
    assert type(results[2].error) is LimitExceeded
    assert "TAGLOOP_MAX_TEXT_BYTES" in results[2].error.message
    assert results[3].labels[0] == "BILLING"
    assert results[4].error.message == "empty text"
    assert results[5].labels[0] == "NETWORK"

    small = make_tagloop(max_text_bytes=20)  # the limit is the setting, counted in UTF-8 bytes
    _, model = small.predictions.model("desk")
    texts = ["vpn down", "é" * 10, "é" * 10 + "x", "printer jammed"]
    results = list(small.predictions.classify(model, texts))
    assert [r.error is not None for r in results] == [False, False, True, False]
    assert "21 bytes" in results[2].error.message
    assert list(small.predictions.classify(model, [])) == []


def test_evaluate_matches_the_metrics_recorded_at_training(trained):
    tagloop, result, test = trained
    evaluated = tagloop.predictions.evaluate("desk", str(test), "v1")
    assert evaluated["version"] == "v1"
    assert evaluated["metrics"] == pytest.approx(result["metrics"])
    assert evaluated["documents"] == result["documents"]["test"] == 54
    recorded = tagloop.catalog.version("desk", "v1")
    assert set(evaluated["per_label"]) == set(recorded["per_label"]) == set(TICKET_LABELS)
    for label, figures in recorded["per_label"].items():
        assert evaluated["per_label"][label] == pytest.approx(figures)
    assert evaluated["confusion_matrix"] == recorded["confusion_matrix"]
    assert tagloop.predictions.evaluate("desk", str(test))["metrics"] == evaluated["metrics"]  # newest


def test_evaluate_errors(trained, write_csv):
    tagloop, _, test = trained
    with pytest.raises(NotFound, match="no version 'v9'"):
        tagloop.predictions.evaluate("desk", str(test), "v9")
    with pytest.raises(NotFound, match="no classifier named 'nobody'"):
        tagloop.predictions.evaluate("nobody", str(test))
    unknown = write_csv([["NETWORK", "vpn down"], ["FACILITIES", "the lift is broken"]], "unknown.csv")
    evaluated = tagloop.predictions.evaluate("desk", str(unknown))
    assert evaluated["documents"] == 2
    assert evaluated["warnings"] == [
        "labels the model was not trained on (it never predicts them): FACILITIES",
        f"labels of the model with no document in {unknown} (their recall is not measured): "
        "ACCESS, BILLING, EMAIL, HARDWARE, SOFTWARE",
    ]
    tagloop.training.submit(TrainRequest(classifier="desk", data=str(test)))
    with pytest.raises(ResourceUnavailable, match="SUBMITTED"):
        tagloop.predictions.evaluate("desk", str(test), "v2")


def test_evaluate_warns_about_the_evaluation_not_about_training_rules(trained, write_csv, tickets):
    """Few documents per label is a rule for training data (TAGLOOP_MIN_DOCS_PER_LABEL): a holdout
    with 2 documents a label is not warned about it; labels missing from it are."""
    tagloop = trained[0]
    rows = [[label, text] for wanted in ("NETWORK", "EMAIL") for label, text in tickets if label == wanted]
    holdout = write_csv(rows[:2] + rows[-2:], "holdout.csv")
    evaluated = tagloop.predictions.evaluate("desk", str(holdout))
    assert evaluated["documents"] == 4
    assert not any("TAGLOOP_MIN_DOCS_PER_LABEL" in warning for warning in evaluated["warnings"])
    assert evaluated["warnings"] == [
        f"labels of the model with no document in {holdout} (their recall is not measured): "
        "ACCESS, BILLING, HARDWARE, SOFTWARE"
    ]


def test_evaluate_hands_over_each_misclassified_document(trained, write_csv):
    tagloop, _, test = trained
    wrong = write_csv(
        [
            ["NETWORK", "the vpn tunnel drops every ten minutes"],  # right
            ["BILLING", "the vpn tunnel drops every ten minutes again"],  # wrong on purpose
            ["FACILITIES", "my printer is jammed"],  # a label the model does not know
        ],
        "wrong.csv",
    )
    records: list[dict] = []
    evaluated = tagloop.predictions.evaluate("desk", str(wrong), misclassified=records.append)
    assert evaluated["documents"] == 3
    assert [(r["line"], r["labels"]) for r in records] == [(2, ["BILLING"]), (3, ["FACILITIES"])]
    first, second = records
    assert first["text"] == "the vpn tunnel drops every ten minutes again"
    assert first["predicted"] == ["NETWORK"]
    # the predicted label, the true one, and the best three: each with its score
    assert {"NETWORK", "BILLING"} <= set(first["scores"]) and 3 <= len(first["scores"]) <= 5
    assert max(first["scores"], key=first["scores"].get) == "NETWORK"
    assert second["predicted"] == ["HARDWARE"] and "FACILITIES" not in second["scores"]
    assert len(second["scores"]) == 3
    # the whole test set: as many records as the metrics count errors
    records.clear()
    evaluated = tagloop.predictions.evaluate("desk", str(test), misclassified=records.append)
    errors = round((1 - evaluated["metrics"]["Accuracy"]) * evaluated["documents"])
    assert len(records) == errors > 0
    assert all(r["predicted"] != r["labels"] for r in records)


def test_no_trained_version_is_unavailable(make_tagloop, write_csv, tickets):
    tagloop = make_tagloop()
    tagloop.training.submit(TrainRequest(classifier="desk", data=str(write_csv([list(r) for r in tickets]))))
    with pytest.raises(ResourceUnavailable, match="no trained model version"):
        tagloop.predictions.model("desk")
    with pytest.raises(ResourceUnavailable, match="SUBMITTED"):
        tagloop.predictions.model("desk", "v1")
    with pytest.raises(NotFound):
        tagloop.predictions.model("nobody")


class CountingStore(ArtifactStore):
    """A real local artifact store that counts the files it reads."""

    reads = 0

    def read_bytes(self, path: str, expected_sha256: str | None = None) -> bytes:
        self.reads += 1
        return super().read_bytes(path, expected_sha256)


def test_the_model_cache_loads_each_version_once(trained, tickets, write_csv):
    tagloop, _, test = trained
    tagloop.training.train(TrainRequest(classifier="desk", data=str(test)))
    rows = version_rows(tagloop, "desk")
    store = CountingStore(tagloop.artifacts.url)
    cache = ModelCache(store, capacity=2)
    first = cache.get(rows["v1"])
    assert cache.get(rows["v1"]) is first and store.reads == 1
    second = cache.get(rows["v2"])
    assert second is not first and store.reads == 2 and len(cache) == 2
    assert cache.get(rows["v1"]) is first and cache.get(rows["v2"]) is second and store.reads == 2
    assert first.labels == TICKET_LABELS

    small = ModelCache(store, capacity=1)
    small.get(rows["v1"])
    small.get(rows["v2"])  # evicts v1
    small.get(rows["v1"])
    assert store.reads == 5 and len(small) == 1

    _, served = tagloop.predictions.model("desk")
    assert tagloop.predictions.model("desk")[1] is served  # the service's own cache


def test_requests_arriving_together_load_a_version_once(trained):
    """A cold server hit by many connections at once: one thread loads, the others wait for it
    (32 loads of a 20ng model at once took 3.9 GB and two minutes of CPU before)."""
    tagloop, _, _ = trained
    rows = version_rows(tagloop, "desk")
    store = CountingStore(tagloop.artifacts.url)
    cache = ModelCache(store)
    start = threading.Barrier(8)

    def get() -> object:
        start.wait()
        return cache.get(rows["v1"])

    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: get(), range(8)))
    assert store.reads == 1
    assert all(model is models[0] for model in models)


def test_the_model_cache_checks_the_hash(trained, make_tagloop):
    tagloop, _, _ = trained
    path = tagloop.catalog.version("desk", "v1")["artifact"]["path"]
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    fresh = make_tagloop()  # another process: nothing cached
    with pytest.raises(ArtifactCorrupt, match="SHA-256"):
        fresh.predictions.model("desk")
    with pytest.raises(ArtifactCorrupt):
        ModelCache(fresh.artifacts).get(version_rows(fresh, "desk")["v1"])


def test_a_version_without_a_model_file_is_unavailable(make_tagloop, write_csv, tickets):
    tagloop = make_tagloop()
    tagloop.training.submit(TrainRequest(classifier="desk", data=str(write_csv([list(r) for r in tickets]))))
    with pytest.raises(ResourceUnavailable, match="no trained model"):
        ModelCache(tagloop.artifacts).get(version_rows(tagloop, "desk")["v1"])


def test_forked_scoring_gives_the_same_results_in_order(trained, tickets):
    tagloop, _, _ = trained
    _, model = tagloop.predictions.model("desk")
    texts = [text for _, text in tickets] + [""]
    alone = list(tagloop.predictions.classify(model, texts, chunk=50, processes=1))
    forked = list(tagloop.predictions.classify(model, texts, chunk=50, processes=2))
    assert forked[:-1] == alone[:-1]
    assert len(forked) == len(texts) and forked[-1].error is not None
    assert forked[-1].error.message == alone[-1].error.message == "empty text"


def test_real_time_answers_list_the_best_classes_the_setting_names(trained, make_tagloop):
    tagloop, _, _ = trained
    _, model = tagloop.predictions.model("desk")
    assert tagloop.predictions.answer_top(model) == 3  # Amazon Comprehend's number
    assert tagloop.predictions.answer_top(model, 1) == 1
    assert tagloop.predictions.answer_top(model, 0) is None  # every class
    every = make_tagloop(classify_top_classes=0)
    assert every.predictions.answer_top(model) is None
    (result,) = tagloop.predictions.classify(model, ["the printer is jammed"], 3)
    (full,) = every.predictions.classify(model, ["the printer is jammed"], None)
    assert result.labels == full.labels[:3] and len(full.labels) == len(model.labels)
    assert result.scores == full.scores[:3]
