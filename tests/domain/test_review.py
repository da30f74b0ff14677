"""Review value types and label checks (domain/review.py)."""

from __future__ import annotations

import pytest

from tagloop.domain.records import Mode
from tagloop.domain.review import (
    NewTask,
    Queue,
    TaskStatus,
    check_answer,
    ordered_choices,
    predicted_labels,
)
from tagloop.errors import InvalidRequest


def test_statuses_are_a2i_words():
    assert [s.value for s in TaskStatus] == ["InProgress", "Completed", "Stopped", "Stopping", "Failed"]
    assert [q.value for q in Queue] == ["review", "moderate"]


def test_choices_follow_the_models_ranking_then_the_rest():
    prediction = {"labels": ["C", "A", "ghost"], "scores": [0.5, 0.3, 0.2]}
    assert ordered_choices(("A", "B", "C", "D"), prediction) == ("C", "A", "B", "D")
    assert ordered_choices(("A", "B"), None) == ("A", "B")


def test_predicted_labels():
    prediction = {"labels": ["C", "A"], "scores": [0.5, 0.3]}
    assert predicted_labels(prediction, Mode.MULTI_CLASS) == frozenset({"C"})
    assert predicted_labels(prediction, Mode.MULTI_LABEL) == frozenset({"C", "A"})
    assert predicted_labels(None, Mode.MULTI_CLASS) is None
    assert predicted_labels({"labels": []}, Mode.MULTI_CLASS) is None


def test_check_answer():
    assert check_answer(["A"], ("A", "B"), Mode.MULTI_CLASS) == ("A",)
    assert check_answer([], ("A", "B"), Mode.MULTI_LABEL) == ()
    assert check_answer(["B", "A"], ("A", "B"), Mode.MULTI_LABEL) == ("B", "A")
    with pytest.raises(InvalidRequest, match="'Z'"):
        check_answer(["Z"], ("A", "B"), Mode.MULTI_LABEL)
    with pytest.raises(InvalidRequest, match="exactly one"):
        check_answer([], ("A", "B"), Mode.MULTI_CLASS)
    with pytest.raises(InvalidRequest, match="twice"):
        check_answer(["A", "A"], ("A", "B"), Mode.MULTI_LABEL)
    with pytest.raises(InvalidRequest):
        check_answer("A", ("A", "B"), Mode.MULTI_CLASS)  # a string is not a list of labels
    assert check_answer(["free"], (), Mode.MULTI_CLASS) == ("free",)  # no choices: any label


@pytest.mark.parametrize(
    "fields",
    [
        {"required": 0},
        {"required": 4},
        {"required": True},
        {"lease_seconds": 0},
        {"lifetime_seconds": -1},
        {"choices": ("A", "A")},
    ],
)
def test_new_task_check_refuses(fields):
    values = {"text": "t", "mode": Mode.MULTI_CLASS, "choices": ("A", "B"), "reason": "audit"}
    task = NewTask(**{**values, **fields})
    with pytest.raises(InvalidRequest):
        task.check()


def test_new_task_defaults_pass():
    NewTask(text="t", mode=Mode.MULTI_CLASS, choices=("A", "B"), reason="audit").check()
