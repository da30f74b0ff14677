"""The default recipe (recipes/tfidf_linear.py) and the model file contract (recipes/base.py,
recipes/registry.py)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import softmax

from tagloop.domain.metrics import evaluate, indicator
from tagloop.domain.records import Mode
from tagloop.domain.splitting import stratification_keys, stratified_holdout
from tagloop.errors import ArtifactCorrupt, Stopped, TrainingFailed
from tagloop.recipes import tfidf_linear as tl
from tagloop.recipes.base import chunks, pack, predict, unpack
from tagloop.recipes.registry import load_model

MC = Mode.MULTI_CLASS
ML = Mode.MULTI_LABEL

Doc = tuple[tuple[str, ...], str]


def train(mode: Mode, docs: Sequence[Doc], labels: list[str] | None = None, **options: object):
    labels = labels or sorted({label for doc_labels, _ in docs for label in doc_labels})
    label_sets = [doc_labels for doc_labels, _ in docs]
    return tl.fit(
        mode,
        labels,
        (text for _, text in docs),
        indicator(label_sets, labels),
        stratification_keys(label_sets),
        **options,  # type: ignore[arg-type]
    )


def split(docs: list[Doc], seed: int = 0, fraction: float = 0.3) -> tuple[list[Doc], list[Doc]]:
    mask, _ = stratified_holdout(stratification_keys([labels for labels, _ in docs]), fraction, seed)
    return (
        [doc for doc, held in zip(docs, mask, strict=True) if not held],
        [doc for doc, held in zip(docs, mask, strict=True) if held],
    )


def texts_of(docs: Sequence[Doc]) -> list[str]:
    return [text for _, text in docs]


# ---- data --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ticket_docs(tickets) -> list[Doc]:
    return [((label,), text) for label, text in tickets]


@pytest.fixture(scope="module")
def ticket_labels(ticket_docs) -> list[str]:
    return sorted({labels[0] for labels, _ in ticket_docs})


@pytest.fixture(scope="module")
def multi_label_docs(ticket_docs) -> list[Doc]:
    """Tickets, every third one joined with another ticket of a different label."""
    docs: list[Doc] = []
    n = len(ticket_docs)
    for i, (labels, text) in enumerate(ticket_docs):
        other_labels, other_text = ticket_docs[(i + 7) % n]
        if i % 3 == 0 and other_labels != labels:
            docs.append((labels + other_labels, f"{text} {other_text}"))
        else:
            docs.append((labels, text))
    return docs


@pytest.fixture(scope="module")
def mc_split(ticket_docs):
    return split(ticket_docs)


@pytest.fixture(scope="module")
def mc_model(mc_split, ticket_labels):
    return train(MC, mc_split[0], ticket_labels)


@pytest.fixture(scope="module")
def ml_split(multi_label_docs):
    return split(multi_label_docs)


@pytest.fixture(scope="module")
def ml_model(ml_split, ticket_labels):
    return train(ML, ml_split[0], ticket_labels)


TINY = [
    (("HW",), "printer paper jam on floor two"),
    (("HW",), "printer toner empty again"),
    (("HW",), "laptop screen flickers printer"),
    (("NET",), "vpn drops every hour wifi"),
    (("NET",), "wifi slow vpn timeout"),
    (("NET",), "cannot reach vpn gateway wifi"),
]


# ---- multi-class ---------------------------------------------------------------------------
def test_multi_class_scores_are_probabilities_summing_to_one(mc_model, mc_split, ticket_labels):
    scores = mc_model.scores(texts_of(mc_split[1]))
    assert scores.shape == (len(mc_split[1]), len(ticket_labels))
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    assert mc_model.mode is MC
    assert mc_model.labels == ticket_labels


def test_multi_class_argmax_is_the_svm_decision_argmax(mc_model, mc_split):
    texts = texts_of(mc_split[1])
    scores = mc_model.scores(texts)
    decision = mc_model.decision(texts)
    assert (scores.argmax(axis=1) == decision.argmax(axis=1)).all()
    assert mc_model.decide(scores) == [[int(i)] for i in decision.argmax(axis=1)]


def test_multi_class_held_out_accuracy_is_well_above_chance(mc_model, mc_split, ticket_labels):
    _, test = mc_split
    picks = mc_model.decide(mc_model.scores(texts_of(test)))
    predicted = [[ticket_labels[i] for i in doc] for doc in picks]
    result = evaluate(MC, ticket_labels, [list(labels) for labels, _ in test], predicted)
    chance = 1 / len(ticket_labels)
    assert result.metrics["Accuracy"] >= 0.6 > 3 * chance
    assert result.metrics["F1Score"] >= 0.55


def test_multi_class_calibration_mean_top_score_is_close_to_accuracy(ticket_docs, ticket_labels):
    top_scores, correct = [], []
    for seed in range(3):
        train_docs, test_docs = split(ticket_docs, seed=seed)
        model = train(MC, train_docs, ticket_labels, params=tl.TfidfLinearParams(seed=seed))
        scores = model.scores(texts_of(test_docs))
        top_scores.extend(scores.max(axis=1))
        correct.extend(
            ticket_labels[i] == labels[0]
            for i, (labels, _) in zip(scores.argmax(axis=1), test_docs, strict=True)
        )
    assert abs(np.mean(top_scores) - np.mean(correct)) <= 0.15


def test_multi_class_calibration_facts(mc_model, mc_split):
    calibration = mc_model.calibration
    assert calibration["method"] == "temperature"
    assert calibration["temperature"] > 0
    # fewer than SMALL_SET documents: 5-fold cross-fitting covers every training document
    assert calibration["documents"] == len(mc_split[0])
    described = mc_model.describe()
    assert described["recipe"] == "tfidf-linear-svm"
    assert described["features"] == len(mc_model.vectorizer.vocabulary_) > 0
    assert described["params"] == dataclasses.asdict(tl.TfidfLinearParams())
    assert described["calibration"]["method"] == "temperature"
    json.dumps(described)


def test_fit_on_one_thread_is_exactly_reproducible(mc_split, ticket_labels):
    texts = texts_of(mc_split[1])
    first = train(MC, mc_split[0], ticket_labels, n_jobs=1)
    second = train(MC, mc_split[0], ticket_labels, n_jobs=1)
    np.testing.assert_array_equal(first.scores(texts), second.scores(texts))
    np.testing.assert_array_equal(first.coef, second.coef)
    assert {**first.calibration, "fit_seconds": 0} == {**second.calibration, "fit_seconds": 0}


def test_fit_on_two_threads_matches_one_thread(mc_split, ticket_labels, mc_model):
    # liblinear's random generator is shared by the threads, so two threads are only
    # reproducible up to rounding (about 1e-5 on the weights), not bit for bit.
    single = train(MC, mc_split[0], ticket_labels, n_jobs=1)
    texts = texts_of(mc_split[1])
    np.testing.assert_allclose(mc_model.scores(texts), single.scores(texts), atol=1e-4)
    assert mc_model.decide(mc_model.scores(texts)) == single.decide(single.scores(texts))


def test_binary_multi_class(ticket_docs):
    docs = [doc for doc in ticket_docs if doc[0][0] in ("BILLING", "NETWORK")]
    train_docs, test_docs = split(docs)
    model = train(MC, train_docs)
    assert model.labels == ["BILLING", "NETWORK"]
    scores = model.scores(texts_of(test_docs))
    assert scores.shape == (len(test_docs), 2)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-9)
    predicted = [model.labels[doc[0]] for doc in model.decide(scores)]
    accuracy = np.mean([p == labels[0] for p, (labels, _) in zip(predicted, test_docs, strict=True)])
    assert accuracy >= 0.8


def test_multi_class_label_absent_from_a_fold_or_with_one_document():
    docs = [*TINY * 3, (("RARE",), "printer vpn billing invoice question")]
    model = train(MC, docs)
    assert model.labels == ["HW", "NET", "RARE"]
    scores = model.scores(["printer jam", "vpn wifi"])
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-9)
    assert [model.labels[p[0]] for p in model.decide(scores)] == ["HW", "NET"]


# ---- multi-label ---------------------------------------------------------------------------
def test_multi_label_scores_are_independent_in_unit_interval(ml_model, ml_split, ticket_labels):
    scores = ml_model.scores(texts_of(ml_split[1]))
    assert scores.shape == (len(ml_split[1]), len(ticket_labels))
    assert ((scores >= 0) & (scores <= 1)).all()
    assert not np.allclose(scores.sum(axis=1), 1.0)  # not a distribution over labels


def test_multi_label_every_document_gets_a_label_best_first(ml_model, ml_split):
    scores = ml_model.scores(texts_of(ml_split[1]))
    threshold = ml_model.calibration["threshold"]
    for row, picks in zip(scores, ml_model.decide(scores), strict=True):
        assert picks
        assert picks[0] == int(row.argmax())
        assert list(row[picks]) == sorted(row[picks], reverse=True)
        if len(picks) > 1 or row[picks[0]] >= threshold:
            assert set(picks) == {int(i) for i in np.flatnonzero(row >= threshold)}
        else:  # nothing reaches the threshold: the best label anyway
            assert (row < threshold).all()


def test_multi_label_calibration_facts(ml_model, ml_split, ticket_labels):
    calibration = ml_model.calibration
    assert calibration["method"] == "platt"
    assert 0 < calibration["threshold"] < 1
    assert len(calibration["a"]) == len(calibration["b"]) == len(ticket_labels)
    assert all(a > 0 for a in calibration["a"])  # higher decision, higher score
    assert calibration["documents"] == len(ml_split[0])
    assert ml_model.describe()["calibration"]["threshold"] == calibration["threshold"]
    assert "a" not in ml_model.describe()["calibration"]


def test_multi_label_held_out_quality(ml_model, ml_split, ticket_labels):
    _, test = ml_split
    picks = ml_model.decide(ml_model.scores(texts_of(test)))
    predicted = [[ticket_labels[i] for i in doc] for doc in picks]
    gold = [list(labels) for labels, _ in test]
    result = evaluate(ML, ticket_labels, gold, predicted)
    assert result.metrics["MicroF1Score"] >= 0.6
    assert result.metrics["HammingLoss"] <= 0.15
    # some documents get two labels
    assert any(len(doc) > 1 for doc in picks)


def test_multi_label_decide_uses_the_threshold(ml_model):
    threshold = ml_model.calibration["threshold"]
    k = len(ml_model.labels)
    scores = np.full((3, k), threshold / 2)
    scores[0, 2], scores[0, 4] = min(1.0, threshold + 0.01), min(1.0, threshold + 0.05)
    scores[1, 1] = threshold  # exactly at the threshold: chosen
    scores[2, 3] = threshold * 0.9  # nothing reaches it: the best label anyway
    assert ml_model.decide(scores) == [[4, 2], [1], [3]]


def test_multi_label_label_in_every_document_does_not_crash(ml_split, ticket_labels):
    train_docs, test_docs = ml_split
    docs = [((*labels, "ALWAYS"), text) for labels, text in train_docs]
    labels = [*ticket_labels, "ALWAYS"]
    model = train(ML, docs, labels)
    scores = model.scores(texts_of(test_docs))
    assert np.isfinite(scores).all()
    assert all(labels.index("ALWAYS") in picks for picks in model.decide(scores))


@pytest.mark.parametrize("labels_per_doc", [("ONLY",), ("X", "Y")])
def test_multi_label_where_every_label_is_in_every_document(labels_per_doc):
    # Valid input for multi-label mode: fit must give a model or a TrainingFailed, not crash.
    docs = [(labels_per_doc, text) for _, text in TINY * 3]
    try:
        model = train(ML, docs)
    except TrainingFailed as exc:
        assert exc.message
    else:
        picks = model.decide(model.scores(["printer jam", "vpn wifi"]))
        assert all(sorted(doc) == list(range(len(labels_per_doc))) for doc in picks)


# ---- small and failing inputs ---------------------------------------------------------------
def test_tiny_multi_class_set_trains_without_calibration():
    model = train(MC, TINY)
    assert model.calibration["method"] == "none"
    assert model.calibration["temperature"] == 1.0
    assert model.calibration["documents"] == 0
    scores = model.scores(["printer toner", "vpn wifi drops"])
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(scores, softmax(model.decision(["printer toner", "vpn wifi drops"]), axis=1))
    assert [model.labels[p[0]] for p in model.decide(scores)] == ["HW", "NET"]


def test_tiny_multi_label_set_trains_without_calibration():
    docs = [*TINY, (("HW", "NET"), "printer on the vpn wifi")]
    model = train(ML, docs)
    assert model.calibration["method"] == "none"
    assert model.calibration["threshold"] == 0.5
    assert model.calibration["a"] == [1.0, 1.0]
    assert model.calibration["b"] == [0.0, 0.0]
    scores = model.scores(["printer paper", "vpn wifi"])
    assert ((scores > 0) & (scores < 1)).all()
    assert [model.labels[p[0]] for p in model.decide(scores)] == ["HW", "NET"]


def test_no_word_in_min_df_documents_fails_clearly():
    docs = [(("A",), "alpha beta"), (("B",), "gamma delta"), (("A",), "epsilon zeta")]
    with pytest.raises(TrainingFailed) as caught:
        train(MC, docs)
    assert "2 or more training documents" in str(caught.value)
    with pytest.raises(TrainingFailed, match="5 or more"):
        train(MC, TINY, params=tl.TfidfLinearParams(min_df=5))


def test_no_usable_words_at_all_fails_clearly():
    docs = [(("A",), "!!!"), (("B",), "? ? ?"), (("A",), "...")]
    with pytest.raises(TrainingFailed, match="no usable words"):
        train(MC, docs, params=tl.TfidfLinearParams(min_df=1))


def test_text_and_label_row_counts_must_agree():
    with pytest.raises(TrainingFailed, match="6 texts for 5 label rows"):
        tl.fit(
            MC, ["HW", "NET"], texts_of(TINY), indicator([d[0] for d in TINY[:5]], ["HW", "NET"]), ["HW"] * 5
        )


def test_min_df_one_accepts_unique_words():
    docs = [(("A",), "alpha beta"), (("B",), "gamma delta"), (("A",), "alpha zeta")]
    model = train(MC, docs, params=tl.TfidfLinearParams(min_df=1, ngram_max=1))
    assert set(model.vectorizer.vocabulary_) == {"alpha", "beta", "gamma", "delta", "zeta"}


def test_should_stop_before_fitting_raises_stopped():
    with pytest.raises(Stopped):
        train(MC, TINY * 3, should_stop=lambda: True)


def test_should_stop_while_fitting_raises_stopped():
    calls = []

    def stop_on_third_call() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Stopped, match="stopped on request"):
        train(MC, TINY * 3, should_stop=stop_on_third_call, n_jobs=1)
    assert len(calls) >= 3


def test_progress_reports_increasing_fractions_up_to_one():
    seen: list[tuple[float, str]] = []
    train(MC, TINY * 3, progress=lambda fraction, message: seen.append((fraction, message)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert all(isinstance(message, str) and message for _, message in seen)


def test_progress_moves_while_words_are_counted_and_while_models_fit(ticket_docs):
    """Reported per 1 % of the documents counted and per model fitted, in order, and reporting
    changes nothing in the model (one thread: liblinear's generator is shared across threads)."""
    seen: list[tuple[float, str]] = []
    model = train(
        MC, ticket_docs, n_jobs=1, progress=lambda fraction, message: seen.append((fraction, message))
    )
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    counting = [fraction for fraction, message in seen if message.startswith("counting words")]
    assert len(set(counting)) >= 50 and min(counting) > 0 and max(counting) <= tl.COUNTED
    selecting = [message for _, message in seen if message.startswith("selecting the words")]
    assert selecting == [
        f"selecting the words of {len(ticket_docs)} documents (min_df) and weighting them (TF-IDF)"
    ]
    fitting = [(fraction, message) for fraction, message in seen if message.startswith("fitting")]
    assert [message.split(": ")[1].split(",")[0] for _, message in fitting][-1] == "6 of 6 done"
    assert len({fraction for fraction, _ in fitting}) >= 6  # each model fitted moves it
    assert all(tl.FEATURES_READY <= fraction <= tl.MODELS_FITTED for fraction, _ in fitting)

    quiet = train(MC, ticket_docs, n_jobs=1)
    np.testing.assert_array_equal(model.coef, quiet.coef)
    np.testing.assert_array_equal(model.intercept, quiet.intercept)
    np.testing.assert_array_equal(model.idf, quiet.idf)
    assert model.vocabulary == quiet.vocabulary
    drop = "fit_seconds"
    assert {k: v for k, v in model.calibration.items() if k != drop} == {
        k: v for k, v in quiet.calibration.items() if k != drop
    }


def test_a_stop_request_is_heard_while_words_are_counted(ticket_docs):
    calls = []

    def stop_at_once() -> bool:
        calls.append(1)
        return True

    seen: list[str] = []
    with pytest.raises(Stopped, match="stopped on request"):
        train(
            MC, ticket_docs, should_stop=stop_at_once, progress=lambda fraction, message: seen.append(message)
        )
    assert len(calls) == 1 and not any(message.startswith("fitting") for message in seen)


# ---- calibration helpers -------------------------------------------------------------------
def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    decision = rng.normal(scale=3.0, size=(4_000, 4))
    probabilities = softmax(decision / 2.0, axis=1)
    truth = np.array([rng.choice(4, p=row) for row in probabilities])
    assert tl.fit_temperature(decision, truth) == pytest.approx(2.0, rel=0.15)


def test_best_threshold_maximizes_micro_f1():
    scores = np.array([[0.9, 0.7, 0.1], [0.8, 0.1, 0.65], [0.2, 0.95, 0.1]])
    truth = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 0]])
    threshold = tl.best_threshold(scores, truth)
    assert 0.2 < threshold <= 0.65
    chosen = scores >= threshold
    assert (chosen == truth.astype(bool)).all()


def test_fit_calibration_below_the_minimum_is_none():
    decision = np.zeros((tl.MIN_CALIBRATION_DOCS - 1, 3))
    truth = np.zeros_like(decision)
    truth[:, 0] = 1
    assert tl.fit_calibration(MC, decision, truth)["method"] == "none"
    assert tl.fit_calibration(ML, decision, truth)["method"] == "none"


def test_fit_calibration_pools_labels_with_few_examples():
    rng = np.random.default_rng(1)
    truth = np.zeros((60, 2), dtype=np.int8)
    truth[:30, 0] = 1
    truth[:2, 1] = 1  # too few positives for its own Platt fit
    decision = np.where(truth == 1, 1.0, -1.0) + rng.normal(scale=0.5, size=truth.shape)
    calibration = tl.fit_calibration(ML, decision, truth)
    assert calibration["method"] == "platt"
    assert calibration["pooled_labels"] == 1
    assert calibration["documents"] == 60
    assert 0 < calibration["threshold"] < 1


def test_calibration_folds():
    assert tl.calibration_folds(["a"] * (tl.MIN_CALIBRATION_DOCS - 1), 0.2, 0) == []
    keys = ["a", "b", "c"] * 20
    folds = tl.calibration_folds(keys, 0.2, 0)
    assert len(folds) == 5
    assert (np.sum(folds, axis=0) == 1).all()  # disjoint and covering every document
    large = ["a", "b", "c", "d"] * (tl.SMALL_SET // 4)
    (mask,) = tl.calibration_folds(large, 0.2, 0)
    assert mask.sum() == pytest.approx(0.2 * len(large), abs=4)


# ---- serialization ---------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["mc_model", "ml_model"])
def test_to_bytes_load_model_round_trip_gives_identical_scores(which, request, ticket_docs):
    model = request.getfixturevalue(which)
    loaded = load_model(model.to_bytes())
    texts = [*texts_of(ticket_docs[:60]), "", "completely unknown words zzz"]
    np.testing.assert_array_equal(loaded.scores(texts), model.scores(texts))
    assert loaded.decide(loaded.scores(texts)) == model.decide(model.scores(texts))
    assert loaded.labels == model.labels
    assert loaded.mode is model.mode
    assert loaded.recipe == model.recipe
    assert loaded.describe() == model.describe()
    assert loaded.to_bytes() == model.to_bytes()


def test_model_file_is_plain_arrays_and_json(mc_model):
    with np.load(io.BytesIO(mc_model.to_bytes()), allow_pickle=False) as archive:
        assert set(archive.files) == {"__meta__", "coef", "intercept", "idf"}
        assert all(archive[name].dtype != object for name in archive.files)
    meta, arrays = unpack(mc_model.to_bytes())
    assert meta["recipe"] == "tfidf-linear-svm"
    assert meta["mode"] == "MULTI_CLASS"
    assert meta["format"] == tl.FORMAT_VERSION
    assert len(meta["vocabulary"]) == arrays["coef"].shape[1] == arrays["idf"].shape[0]
    assert arrays["coef"].shape[0] == len(meta["labels"])


UNPICKLED: list[bool] = []


def _record_unpickling() -> str:
    UNPICKLED.append(True)
    return "unpickled"


class _Trap:
    def __reduce__(self):
        return (_record_unpickling, ())


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def test_load_model_refuses_object_arrays_without_unpickling(mc_model):
    meta, arrays = unpack(mc_model.to_bytes())
    trapped = dict(arrays, coef=np.array([_Trap()], dtype=object))
    blobs = [
        pack(meta, trapped),
        _npz(__meta__=np.array([_Trap()], dtype=object)),
        _npz(__meta__=_meta_array(meta), coef=np.array([_Trap(), 1], dtype=object)),
    ]
    for blob in blobs:
        with pytest.raises(ArtifactCorrupt, match="cannot be read"):
            load_model(blob)
    assert UNPICKLED == []


def test_load_model_refuses_a_plain_pickle_without_unpickling():
    import pickle

    with pytest.raises(ArtifactCorrupt):
        load_model(pickle.dumps(_Trap()))
    assert UNPICKLED == []


def test_load_model_refuses_random_bytes():
    rng = np.random.default_rng(3)
    with pytest.raises(ArtifactCorrupt):
        load_model(rng.bytes(512))
    with pytest.raises(ArtifactCorrupt):
        load_model(b"not a model at all")


def test_load_model_refuses_unknown_recipe_and_bad_metadata():
    with pytest.raises(ArtifactCorrupt, match="unknown model recipe 'other'"):
        load_model(pack({"recipe": "other"}, {}))
    with pytest.raises(ArtifactCorrupt, match="unknown model recipe"):
        load_model(pack({}, {}))
    with pytest.raises(ArtifactCorrupt):
        load_model(_npz(__meta__=np.frombuffer(b"{not json", dtype=np.uint8)))
    with pytest.raises(ArtifactCorrupt):
        load_model(_npz(__meta__=np.frombuffer(b"\xff\xfe", dtype=np.uint8)))
    with pytest.raises(ArtifactCorrupt):
        load_model(_npz(coef=np.zeros(3)))


@pytest.mark.parametrize("damage", ["empty", "truncated", "tail cut", "flipped byte"])
def test_load_model_refuses_a_damaged_file(damage, mc_model):
    data = mc_model.to_bytes()
    middle = len(data) // 2
    damaged = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "tail cut": data[:-10],
        "flipped byte": data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :],
    }[damage]
    with pytest.raises(ArtifactCorrupt):
        load_model(damaged)


def test_load_model_refuses_a_model_file_with_missing_parts(mc_model):
    meta, arrays = unpack(mc_model.to_bytes())
    without_params = {k: v for k, v in meta.items() if k != "params"}
    with pytest.raises(ArtifactCorrupt):
        load_model(pack(without_params, arrays))
    with pytest.raises(ArtifactCorrupt):
        load_model(pack(meta, {k: v for k, v in arrays.items() if k != "coef"}))


def test_pack_unpack_round_trip():
    meta = {"recipe": "x", "labels": ["é", "日本"], "nested": {"a": [1, 2.5, None]}}
    arrays = {"m": np.arange(6, dtype=np.float32).reshape(2, 3), "v": np.array([1, 2], dtype=np.int64)}
    got_meta, got_arrays = unpack(pack(meta, arrays))
    assert got_meta == meta
    assert set(got_arrays) == {"m", "v"}
    np.testing.assert_array_equal(got_arrays["m"], arrays["m"])
    assert got_arrays["m"].dtype == np.float32


# ---- the model contract helpers --------------------------------------------------------------
def test_chunks():
    assert list(chunks(iter("abcdefg"), 3)) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert list(chunks([], 3)) == []


def test_predict_streams_chunks(mc_model, ticket_docs):
    texts = texts_of(ticket_docs[:25])
    parts = list(predict(mc_model, iter(texts), chunk=10))
    assert [len(scores) for scores, _ in parts] == [10, 10, 5]
    all_scores = np.vstack([scores for scores, _ in parts])
    np.testing.assert_allclose(all_scores, mc_model.scores(texts), rtol=1e-5, atol=1e-9)  # float32 sums
    assert [p for _, picks in parts for p in picks] == mc_model.decide(mc_model.scores(texts))


def test_a_texts_scores_do_not_depend_on_its_batch_and_match_scikit_learn(tickets):
    from tagloop.domain.metrics import indicator
    from tagloop.domain.records import Mode
    from tagloop.domain.splitting import stratification_keys
    from tagloop.recipes import tfidf_linear as recipe

    labels = sorted({label for label, _ in tickets})
    gold = [(label,) for label, _ in tickets]
    texts = [text for _, text in tickets]
    model = recipe.fit(
        Mode.MULTI_CLASS, labels, texts, indicator(gold, labels), stratification_keys(gold), n_jobs=1
    )
    batch = model.decision(texts)
    one_by_one = np.vstack([model.decision([text]) for text in texts])
    np.testing.assert_array_equal(one_by_one, batch)  # bit for bit: served scores are reproducible
    reference = model.vectorizer.transform(texts) @ model.coef.T.astype(np.float64) + model.intercept
    np.testing.assert_allclose(batch, reference, atol=1e-5)
    unknown_words_only = model.decision(["zzzqqq xxyyzz"])
    np.testing.assert_allclose(unknown_words_only[0], model.intercept)


# ---- self-training (opt-in): one round on unlabelled rows with the model's own labels ----------
def _rows_of(docs: Sequence[Doc], labels: list[str]):
    vectorizer, features = tl.vectorize(texts_of(docs))
    label_sets = [doc_labels for doc_labels, _ in docs]
    return vectorizer, features, indicator(label_sets, labels), stratification_keys(label_sets)


def test_self_training_refits_on_the_unlabelled_rows_labelled_by_the_model(mc_split, ticket_labels):
    n = 30  # few labelled documents: the second round's guesses differ from the first's
    labelled_docs, pool_docs = mc_split[0][:n], mc_split[0][n:]
    _, everything, truth, keys = _rows_of([*labelled_docs, *pool_docs], ticket_labels)
    features, unlabelled = everything[:n], everything[n:]
    truth, keys = truth[:n], keys[:n]
    plain = tl.TfidfLinearParams()
    coef, intercept, calibration = tl.fit_linear(MC, ticket_labels, features, truth, keys, plain, 1)
    on = tl.TfidfLinearParams(self_training=True)
    assert (on.self_training_weight, on.self_training_share, on.self_training_rounds) == (0.5, 0.7, 2)

    def by_hand(model_coef, model_intercept, share: float, weight: float):
        """One round: the pool labelled with the model's best label, the ``share`` of it with
        the widest gap between the two best decisions kept, one fit on both, a pool row counting
        ``weight`` of a labelled one."""
        decision = np.asarray(unlabelled @ model_coef.T) + model_intercept
        ordered = np.sort(decision, axis=1)
        gap = ordered[:, -1] - ordered[:, -2]
        kept = np.sort(np.argsort(-gap, kind="stable")[: int(np.ceil(share * unlabelled.shape[0]))])
        if share < 1:
            assert len(kept) < unlabelled.shape[0] and gap[kept].min() >= np.delete(gap, kept).max()
        rows = sp.vstack([features, unlabelled[kept]], format="csr")
        target = np.concatenate([truth.argmax(axis=1), decision[kept].argmax(axis=1)])
        weights = np.concatenate([np.ones(n), np.full(len(kept), weight)])
        return tl._fit_multiclass(rows, target, len(ticket_labels), plain, tl.SELF_TRAINING_TOL, weights)

    first = by_hand(coef, intercept, 0.7, 0.5)
    hand = by_hand(*first, 0.7, 0.5)  # the second round labels the pool with the first's model
    st_coef, st_intercept, st_calibration = tl.fit_linear(
        MC, ticket_labels, features, truth, keys, on, 1, unlabelled=unlabelled
    )
    np.testing.assert_allclose(st_coef, hand[0])
    np.testing.assert_allclose(st_intercept, hand[1])
    assert not np.allclose(st_coef, coef)  # the pool changed the model
    assert not np.allclose(st_coef, first[0])  # and the second round changed it again
    one_round, _, _ = tl.fit_linear(
        MC,
        ticket_labels,
        features,
        truth,
        keys,
        dataclasses.replace(on, self_training_rounds=1),
        1,
        unlabelled=unlabelled,
    )
    np.testing.assert_allclose(one_round, first[0])
    # at weight 1 and share 1, one round: every pool row counts as a labelled one
    even = dataclasses.replace(on, self_training_weight=1.0, self_training_share=1.0, self_training_rounds=1)
    rows = sp.vstack([features, unlabelled], format="csr")
    guessed = (np.asarray(unlabelled @ coef.T) + intercept).argmax(axis=1)
    target = np.concatenate([truth.argmax(axis=1), guessed])
    unweighted = tl._fit_multiclass(rows, target, len(ticket_labels), plain, tl.SELF_TRAINING_TOL)
    even_coef, _, _ = tl.fit_linear(MC, ticket_labels, features, truth, keys, even, 1, unlabelled=unlabelled)
    np.testing.assert_allclose(even_coef, unweighted[0])
    np.testing.assert_allclose(even_coef, by_hand(coef, intercept, 1.0, 1.0)[0])
    assert st_calibration["self_trained"] == unlabelled.shape[0]
    assert st_calibration["temperature"] == calibration["temperature"]  # the labelled hold-out's
    # off, or without unlabelled rows, or multi-label: exactly the plain fit
    for params, rows in ((plain, unlabelled), (on, None)):
        same, _, same_calibration = tl.fit_linear(
            MC, ticket_labels, features, truth, keys, params, 1, unlabelled=rows
        )
        np.testing.assert_array_equal(same, coef)
        assert "self_trained" not in same_calibration
    ml_plain, _, _ = tl.fit_linear(ML, ticket_labels, features, truth, keys, plain, 1)
    ml_on, _, ml_calibration = tl.fit_linear(
        ML, ticket_labels, features, truth, keys, on, 1, unlabelled=unlabelled
    )
    np.testing.assert_array_equal(ml_on, ml_plain)
    assert "self_trained" not in ml_calibration


def test_a_multiclass_fit_spread_over_threads_gives_the_one_thread_fit(mc_split, ticket_labels):
    _, features, truth, _ = _rows_of(mc_split[0], ticket_labels)
    target = truth.argmax(axis=1)
    params = tl.TfidfLinearParams()
    one = tl._fit_multiclass(features, target, len(ticket_labels), params, 1e-8)
    for threads in (2, 3, len(ticket_labels) + 2):
        spread = tl._fit_multiclass_threads(features, target, len(ticket_labels), params, 1e-8, threads)
        np.testing.assert_allclose(spread[0], one[0], atol=1e-4)
        np.testing.assert_allclose(spread[1], one[1], atol=1e-4)
    # a label absent from the targets gets the far-below decision, as in the one-thread fit
    absent = np.where(target == 0, 1, target)
    one = tl._fit_multiclass(features, absent, len(ticket_labels), params, 1e-8)
    spread = tl._fit_multiclass_threads(features, absent, len(ticket_labels), params, 1e-8, 2)
    assert spread[1][0] == one[1][0] == -10.0
    np.testing.assert_allclose(spread[0], one[0], atol=1e-4)
    # with per-document weights (self-training's), the same
    weight = np.where(np.arange(len(target)) % 3 == 0, 1.0, 0.3)
    one = tl._fit_multiclass(features, target, len(ticket_labels), params, 1e-8, weight)
    spread = tl._fit_multiclass_threads(features, target, len(ticket_labels), params, 1e-8, 2, weight)
    np.testing.assert_allclose(spread[0], one[0], atol=1e-4)
    np.testing.assert_allclose(spread[1], one[1], atol=1e-4)


def test_the_self_training_settings_are_checked():
    for name in ("self_training_weight", "self_training_share"):
        for bad in (0.0, -0.5, 1.5, float("nan")):
            with pytest.raises(ValueError, match=name):
                tl.TfidfLinearParams(self_training=True, **{name: bad})
    for bad_rounds in (0, -1, tl.MAX_SELF_TRAINING_ROUNDS + 1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="self_training_rounds"):
            tl.TfidfLinearParams(self_training=True, self_training_rounds=bad_rounds)  # type: ignore[arg-type]


def test_surest_rows_keep_the_widest_gaps_rounded_up_in_row_order():
    decision = np.array(
        [
            [0.9, 0.1, 0.0],  # gap 0.8
            [0.5, 0.4, 0.0],  # gap 0.1
            [-1.0, 0.0, 1.0],  # gap 1.0
            [0.3, 0.3, 0.2],  # gap 0.0
            [0.0, 0.5, 0.0],  # gap 0.5
        ]
    )
    assert tl.surest_rows(decision, 0.4).tolist() == [0, 2]
    assert tl.surest_rows(decision, 0.5).tolist() == [0, 2, 4]  # 2.5 rows: rounded up
    assert tl.surest_rows(decision, 0.6).tolist() == [0, 2, 4]
    assert tl.surest_rows(decision, 1.0).tolist() == [0, 1, 2, 3, 4]
    assert tl.surest_rows(decision, 0.01).tolist() == [2]
    tied = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # every gap 1: the earlier rows
    assert tl.surest_rows(tied, 0.5).tolist() == [0, 1]
    assert tl.surest_rows(np.zeros((0, 3)), 0.7).tolist() == []


def test_self_training_is_saved_and_a_model_saved_before_it_loads_with_it_off(mc_model):
    meta, arrays = unpack(mc_model.to_bytes())
    assert meta["params"]["self_training"] is False
    del meta["params"]["self_training"]  # as models saved before the option were
    loaded = load_model(pack(meta, arrays))
    assert loaded.params.self_training is False
    assert loaded.scores(["printer jam"]).shape == mc_model.scores(["printer jam"]).shape
    on = dataclasses.replace(mc_model.params, self_training=True)
    model = tl.TfidfLinearModel(
        MC,
        mc_model.labels,
        on,
        mc_model.vocabulary,
        mc_model.idf,
        mc_model.coef,
        mc_model.intercept,
        mc_model.calibration,
    )
    assert load_model(model.to_bytes()).params.self_training is True
