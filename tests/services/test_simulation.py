"""Learning-curve simulation with the real recipe and strategies, on a small synthetic set."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest

from tagloop.domain.limits import Limits
from tagloop.domain.metrics import indicator
from tagloop.domain.records import Mode
from tagloop.domain.splitting import stratification_keys
from tagloop.errors import DatasetInvalid, InvalidRequest
from tagloop.recipes import tfidf_linear
from tagloop.services.simulation import (
    LabelledTexts,
    SimulationPlan,
    Simulator,
    combine,
    curve_svg,
    labels_to_reach,
    read_labelled,
    simulate,
)

LABELS = ["ALPHA", "BRAVO", "CHARLIE", "DELTA"]
WORDS = {
    label: [f"{label.lower()}{w}" for w in ("fox", "owl", "elk", "yak", "emu", "cod")] for label in LABELS
}
FILLER = ["please", "help", "today", "again", "thanks", "issue", "since", "morning"]


def synthetic(documents: int, seed: int, noise: float = 0.3) -> LabelledTexts:
    """Texts of 2 words of their label, 3 common words, and (with probability ``noise``) a word
    of another label, so a few labels are not enough to be perfect."""
    rng = np.random.default_rng(seed)
    texts, label_sets = [], []
    for i in range(documents):
        label = LABELS[i % len(LABELS)]
        words = [str(w) for w in rng.choice(WORDS[label], 2, replace=False)]
        words += [str(w) for w in rng.choice(FILLER, 3)]
        if rng.random() < noise:
            other = LABELS[(i + 1 + int(rng.integers(3))) % len(LABELS)]
            words.append(str(rng.choice(WORDS[other])))
        rng.shuffle(words)
        texts.append(" ".join(words))
        label_sets.append((label,))
    return LabelledTexts(texts, label_sets)


TRAIN = synthetic(120, 1)
TEST = synthetic(60, 2)


@pytest.fixture(scope="module")
def result():
    plan = SimulationPlan(("margin", "random", "badge"), initial_per_label=2, batch=10, budget=48, repeats=2)
    return simulate(TRAIN, TEST, Mode.MULTI_CLASS, plan, n_jobs=1)


def test_every_strategy_has_a_curve_per_repeat_from_the_same_start(result):
    assert result["documents"] == {"train": 120, "test": 60, "labels": 4}
    assert set(result["strategies"]) == {"margin", "random", "badge"}
    for figures in result["strategies"].values():
        assert len(figures["repeats"]) == 2
        for curve in figures["repeats"]:
            # 2 per label to start, 10 per step, the budget of 48 caps the last step at 8
            assert [p["labels"] for p in curve] == [8, 18, 28, 38, 48]
            assert all(0.0 <= p["accuracy"] <= 1.0 and 0.0 <= p["f1"] <= 1.0 for p in curve)
        assert [p["labels"] for p in figures["steps"]] == [8, 18, 28, 38, 48]
        assert set(figures["to_reach"]) == {"95%", "99%"}
    for repeat in range(2):  # same initial documents and seed: the same first model everywhere
        firsts = {name: f["repeats"][repeat][0]["accuracy"] for name, f in result["strategies"].items()}
        assert len(set(firsts.values())) == 1


def test_labels_to_reach_summarize_the_repeats(result):
    full = result["full"]["accuracy"]
    for figures in result["strategies"].values():
        for share, reach in figures["to_reach"].items():
            target = float(share.rstrip("%")) / 100 * full
            each = [labels_to_reach(curve, target) for curve in figures["repeats"]]
            assert reach["each"] == each
            assert reach["reached"] == sum(v is not None for v in each)
            if None not in each:
                assert reach["mean"] == pytest.approx(np.mean(each))
                assert reach["min"] == min(each) and reach["max"] == max(each)
            else:
                assert reach["mean"] is None


def test_labels_to_reach_is_the_first_step_at_or_above_the_target():
    curve = [
        {"labels": 10, "accuracy": 0.5},
        {"labels": 20, "accuracy": 0.8},
        {"labels": 30, "accuracy": 0.9},
    ]
    assert labels_to_reach(curve, 0.8) == 20
    assert labels_to_reach(curve, 0.85) == 30
    assert labels_to_reach(curve, 0.95) is None


def test_the_full_data_model_is_what_the_recipe_fits_on_every_document(result):
    model = tfidf_linear.fit(
        Mode.MULTI_CLASS,
        sorted(LABELS),
        TRAIN.texts,
        indicator(TRAIN.label_sets, sorted(LABELS)),
        stratification_keys(TRAIN.label_sets),
        n_jobs=1,
    )
    predicted = np.array([row[0] for row in model.decide(model.scores(TEST.texts))])
    truth = np.array([sorted(LABELS).index(labels[0]) for labels in TEST.label_sets])
    assert result["full"]["accuracy"] == pytest.approx(float((predicted == truth).mean()), abs=1e-4)


def test_a_step_fits_what_fit_features_fits_on_every_column():
    simulator = Simulator(TRAIN, TEST, Mode.MULTI_CLASS, n_jobs=1)
    rows = np.arange(0, 120, 3)
    fast = simulator.fit(rows)
    plain = tfidf_linear.fit_features(
        Mode.MULTI_CLASS,
        simulator.labels,
        simulator.features[rows],
        simulator.vocabulary,
        simulator.idf,
        simulator.truth[rows],
        [simulator.keys[i] for i in rows],
        n_jobs=1,
    )
    np.testing.assert_allclose(fast.coef, plain.coef, atol=1e-5)
    np.testing.assert_allclose(
        fast.scores_of_features(simulator.test_features), plain.scores(TEST.texts), atol=1e-4
    )


def test_stop_at_target_ends_a_run_once_the_highest_target_is_reached():
    plan = SimulationPlan(("margin",), 2, 10, 120, 1, targets=(0.5,), stop_at_target=True)
    curve = simulate(TRAIN, TEST, Mode.MULTI_CLASS, plan, n_jobs=1)["strategies"]["margin"]["repeats"][0]
    full = simulate(TRAIN, TEST, Mode.MULTI_CLASS, plan, n_jobs=1)["full"]["accuracy"]
    assert curve[-1]["accuracy"] >= 0.5 * full
    assert all(p["accuracy"] < 0.5 * full for p in curve[:-1])


def test_multi_label_runs_too():
    rng = np.random.default_rng(4)
    label_sets = [tuple(sorted({LABELS[i % 4], LABELS[int(rng.integers(4))]})) for i in range(80)]
    texts = [
        " ".join(WORDS[label][int(rng.integers(6))] for label in labels) + " please" for labels in label_sets
    ]
    data = LabelledTexts(texts, label_sets)
    plan = SimulationPlan(("entropy", "cluster-margin"), 2, 8, 30, 1)
    result = simulate(data, data, Mode.MULTI_LABEL, plan, n_jobs=1)
    assert result["mode"] == Mode.MULTI_LABEL.value
    assert [p["labels"] for p in result["strategies"]["entropy"]["steps"]][-1] == 30


def test_the_plot_is_an_svg_with_a_curve_per_strategy(result):
    svg = curve_svg(result, title="curves <synthetic>")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3
    assert all(len(line.get("points", "").split()) == 5 for line in lines)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "curves <synthetic>" in texts and {"margin", "random", "badge"} <= set(texts)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategies": ("margin", "best")}, "unknown strategy 'best'"),
        ({"strategies": ()}, "at least one strategy"),
        ({"strategies": ("margin", "margin")}, "named twice"),
        ({"repeats": 0}, "repeats"),
        ({"batch": True}, "batch"),
        ({"budget": -5}, "budget"),
        ({"targets": (1.5,)}, "target"),
    ],
)
def test_a_bad_plan_is_refused(changes, message):
    values = {"strategies": ("margin",)} | changes
    with pytest.raises(InvalidRequest, match=message):
        SimulationPlan(**values)


def test_read_labelled_reads_like_training_and_refuses_bad_rows(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("ALPHA,alphafox please\nBRAVO,bravoowl help\n", encoding="utf-8")
    data, _ = read_labelled(str(good), Mode.MULTI_CLASS, Limits())
    assert data.texts == ["alphafox please", "bravoowl help"]
    assert data.label_sets == [("ALPHA",), ("BRAVO",)]
    bad = tmp_path / "bad.csv"
    bad.write_text("ALPHA,alphafox please\nBRAVO,\n", encoding="utf-8")
    with pytest.raises(DatasetInvalid):
        read_labelled(str(bad), Mode.MULTI_CLASS, Limits())


def test_empty_sets_are_refused():
    with pytest.raises(InvalidRequest, match="training set is empty"):
        Simulator(LabelledTexts([], []), TEST, Mode.MULTI_CLASS)


def test_with_self_training_a_step_also_learns_from_the_pool():
    simulator = Simulator(TRAIN, TEST, Mode.MULTI_CLASS, {"self_training": True}, n_jobs=1)
    rows = np.arange(0, 120, 6)
    rest = np.setdiff1d(np.arange(120), rows)
    fast = simulator.fit(rows)
    plain = tfidf_linear.fit_features(
        Mode.MULTI_CLASS,
        simulator.labels,
        simulator.features[rows],
        simulator.vocabulary,
        simulator.idf,
        simulator.truth[rows],
        [simulator.keys[i] for i in rows],
        tfidf_linear.TfidfLinearParams(self_training=True),
        n_jobs=1,
        unlabelled=simulator.features[rest],
    )
    assert plain.calibration["self_trained"] == len(rest)
    np.testing.assert_allclose(fast.coef, plain.coef, atol=1e-5)
    without = Simulator(TRAIN, TEST, Mode.MULTI_CLASS, n_jobs=1).fit(rows)
    assert not np.allclose(fast.coef, without.coef, atol=1e-3)
    plan = SimulationPlan(("random",), initial_per_label=2, batch=20, budget=28, repeats=1)
    result = simulate(TRAIN, TEST, Mode.MULTI_CLASS, plan, {"self_training": True}, n_jobs=1)
    assert result["recipe"]["self_training"] is True


def test_runs_of_one_repeat_each_combine_into_the_run_of_both_repeats(result):
    plan = SimulationPlan(("margin", "random", "badge"), initial_per_label=2, batch=10, budget=48, repeats=1)
    runs = [simulate(TRAIN, TEST, Mode.MULTI_CLASS, replace(plan, seed=s), n_jobs=1) for s in (0, 1)]
    combined = combine(runs)
    assert combined["plan"]["repeats"] == 2 and combined["plan"]["seed"] == 0
    assert combined["full"] == runs[0]["full"]
    for name, figures in combined["strategies"].items():
        assert figures["repeats"] == [run["strategies"][name]["repeats"][0] for run in runs]
        # the same seeds as one run of two repeats: the same first model of each repeat
        assert [c[0] for c in figures["repeats"]] == [c[0] for c in result["strategies"][name]["repeats"]]
        full = combined["full"]["accuracy"]
        each = [labels_to_reach(curve, 0.95 * full) for curve in figures["repeats"]]
        assert figures["to_reach"]["95%"]["each"] == each
        assert [p["labels"] for p in figures["steps"]] == [8, 18, 28, 38, 48]
    with pytest.raises(InvalidRequest, match="nothing to combine"):
        combine([])
    other = simulate(TRAIN, TEST, Mode.MULTI_CLASS, replace(plan, strategies=("random",)), n_jobs=1)
    with pytest.raises(InvalidRequest, match="differ"):
        combine([runs[0], other])
