"""The promotion rule (domain/promotion.py) on hand-made evaluations."""

from __future__ import annotations

import pytest

from tagloop.domain.loop import LoopSettings
from tagloop.domain.metrics import Evaluation
from tagloop.domain.promotion import decide


def evaluation(f1: float, per_label: dict[str, float], hamming: float = 0.1) -> Evaluation:
    return Evaluation(
        metrics={"F1Score": f1, "Accuracy": f1, "HammingLoss": hamming},
        per_label={label: {"f1": value, "support": 10} for label, value in per_label.items()},
        confusion_matrix={},
        documents=30,
    )


CHAMPION = evaluation(0.80, {"a": 0.9, "b": 0.8, "c": 0.7})


def test_no_champion_yet_promotes() -> None:
    decision = decide(LoopSettings(), None, evaluation(0.5, {"a": 0.5}))
    assert decision.promote and decision.decision == "promoted"
    assert "no champion" in decision.reason
    assert decision.per_label == {"a": {"champion": None, "challenger": 0.5, "delta": None}}


def test_better_promotes_with_per_label_deltas() -> None:
    challenger = evaluation(0.85, {"a": 0.9, "b": 0.85, "c": 0.8})
    decision = decide(LoopSettings(), CHAMPION, challenger)
    assert decision.promote and decision.passed
    assert decision.per_label["b"] == {"champion": 0.8, "challenger": 0.85, "delta": pytest.approx(0.05)}
    assert "0.8000 → 0.8500" in decision.reason


def test_equal_keeps() -> None:
    decision = decide(LoopSettings(), CHAMPION, evaluation(0.80, {"a": 0.9, "b": 0.8, "c": 0.7}))
    assert not decision.promote and decision.decision == "kept"
    assert "no change" in decision.reason


def test_worse_keeps() -> None:
    decision = decide(LoopSettings(), CHAMPION, evaluation(0.79, {"a": 0.9, "b": 0.79, "c": 0.7}))
    assert not decision.promote and "worse" in decision.reason


def test_gain_below_the_minimum_keeps() -> None:
    challenger = evaluation(0.805, {"a": 0.9, "b": 0.81, "c": 0.705})
    assert not decide(LoopSettings(min_gain=0.01), CHAMPION, challenger).promote
    assert decide(LoopSettings(min_gain=0.005), CHAMPION, challenger).promote


def test_guard_violated_keeps_and_names_the_label() -> None:
    # better on average, but label c fell by 0.1 > 0.05 (and b by exactly the guard: allowed)
    challenger = evaluation(0.85, {"a": 1.0, "b": 0.75, "c": 0.6})
    decision = decide(LoopSettings(max_label_drop=0.05), CHAMPION, challenger)
    assert not decision.promote and not decision.passed
    assert "c (0.1000)" in decision.reason and "b (" not in decision.reason
    assert decide(LoopSettings(max_label_drop=0.1), CHAMPION, challenger).promote


def test_a_label_only_one_model_knows_counts_as_zero_for_the_other() -> None:
    challenger = evaluation(0.85, {"a": 0.9, "b": 0.85})  # c missing: its F1 is 0 → fell by 0.7
    decision = decide(LoopSettings(), CHAMPION, challenger)
    assert not decision.promote and "c (0.7000)" in decision.reason


def test_manual_promotion_records_the_verdict_and_moves_nothing() -> None:
    challenger = evaluation(0.85, {"a": 0.9, "b": 0.85, "c": 0.8})
    decision = decide(LoopSettings(promote="manual"), CHAMPION, challenger)
    assert decision.passed and not decision.promote and decision.decision == "kept"
    assert "manual" in decision.reason
    first = decide(LoopSettings(promote="manual"), None, challenger)
    assert first.passed and not first.promote


def test_lower_is_better_metric() -> None:
    settings = LoopSettings(metric="HammingLoss")
    better = evaluation(0.80, {"a": 0.9, "b": 0.8, "c": 0.7}, hamming=0.05)
    worse = evaluation(0.80, {"a": 0.9, "b": 0.8, "c": 0.7}, hamming=0.2)
    assert decide(settings, CHAMPION, better).promote
    assert not decide(settings, CHAMPION, worse).promote
