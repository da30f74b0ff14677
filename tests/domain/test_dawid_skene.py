"""Dawid–Skene (domain/dawid_skene.py) on crowds with known reviewer accuracies, on Dawid and
Skene's own 1979 data, and on degenerate inputs."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from tagloop.domain.dawid_skene import dawid_skene, fit_history, reliable_label
from tagloop.errors import InvalidRequest

LABELS = ("a", "b", "c", "d")


def crowd(
    accuracies: dict[str, float], items: int, per_item: int, seed: int
) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """Items with a true label each, answered by ``per_item`` reviewers drawn at random; a
    reviewer is right with their accuracy, else picks one of the wrong labels at random."""
    rng = random.Random(seed)
    truth = [rng.choice(LABELS) for _ in range(items)]
    answered = []
    for true in truth:
        answers = []
        for reviewer in rng.sample(sorted(accuracies), per_item):
            right = rng.random() < accuracies[reviewer]
            answers.append((reviewer, true if right else rng.choice([x for x in LABELS if x != true])))
        answered.append(answers)
    return truth, answered


def majority(answers: list[tuple[str, str]]) -> str:
    """Plain majority vote, ties to the first label (as dawid_skene breaks its ties)."""
    votes = Counter(label for _, label in answers)
    return max(LABELS, key=lambda label: (votes[label], -LABELS.index(label)))


def accuracy(found: list[str], truth: list[str]) -> float:
    return sum(a == b for a, b in zip(found, truth, strict=True)) / len(truth)


def test_good_reviewers_and_spammers_truth_and_accuracies_recovered():
    accuracies = {"good1": 0.9, "good2": 0.85, "good3": 0.8, "spam1": 0.25, "spam2": 0.25}
    truth, items = crowd(accuracies, 600, 3, seed=1)
    result = dawid_skene(items, LABELS)
    assert result.converged and result.iterations > 1
    ds = accuracy(result.item_labels(), truth)
    mv = accuracy([majority(answers) for answers in items], truth)
    assert ds >= mv
    for reviewer, true in accuracies.items():
        assert result.accuracy(reviewer) == pytest.approx(true, abs=0.07)
    assert np.allclose(result.posteriors.sum(axis=1), 1) and result.priors.sum() == pytest.approx(1)
    for matrix in result.confusion.values():
        assert np.allclose(matrix.sum(axis=1), 1)
    assert sum(result.answers.values()) == 600 * 3


def test_spammer_heavy_crowd_ds_strictly_better_than_majority():
    accuracies = {"good1": 0.9, "good2": 0.85, "spam1": 0.25, "spam2": 0.25, "spam3": 0.25, "spam4": 0.25}
    truth, items = crowd(accuracies, 600, 3, seed=2)
    result = dawid_skene(items, LABELS)
    ds = accuracy(result.item_labels(), truth)
    mv = accuracy([majority(answers) for answers in items], truth)
    assert ds > mv + 0.05, (ds, mv)
    assert result.accuracy("good1") > 0.8 > 0.4 > result.accuracy("spam1")


def test_a_tie_is_decided_by_the_reliable_reviewer():
    accuracies = {"good": 0.95, "fair": 0.8, "spam": 0.25}
    _, items = crowd(accuracies, 300, 3, seed=3)
    result = dawid_skene(items, LABELS)
    posterior = result.posterior([("good", "b"), ("spam", "c")])
    assert result.labels[int(np.argmax(posterior))] == "b" and posterior.max() > 0.75
    flipped = result.posterior([("good", "c"), ("spam", "b")])
    assert result.labels[int(np.argmax(flipped))] == "c"
    # unknown reviewers and labels add no evidence: the priors
    assert np.allclose(result.posterior([("nobody", "a"), ("good", "zzz")]), result.priors)


def test_deterministic_and_ties_go_to_the_label_listed_first():
    _, items = crowd({"x": 0.7, "y": 0.7, "z": 0.6}, 100, 2, seed=4)
    first, second = dawid_skene(items, LABELS), dawid_skene(items, LABELS)
    assert np.array_equal(first.posteriors, second.posteriors)
    tie = dawid_skene([[("x", "b"), ("y", "a")]], ("b", "a"))  # symmetric: an exact tie
    assert tie.posteriors[0][0] == pytest.approx(0.5) and tie.item_labels() == ["b"]


def test_smoothing_keeps_a_reviewer_with_few_answers_off_zero_and_one():
    items = [[("new", "a"), ("old", "a")]] + [[("old", "b"), ("other", "b")]] * 30
    result = dawid_skene(items, ("a", "b"))
    assert result.confusion["new"].min() > 0 and result.confusion["new"].max() < 1
    unsmoothed = dawid_skene(items, ("a", "b"), smoothing=0)
    assert np.isfinite(unsmoothed.posteriors).all()


def test_degenerate_inputs():
    empty = dawid_skene([], LABELS)
    assert empty.posteriors.shape == (0, 4) and empty.converged and empty.iterations == 0
    nothing = dawid_skene([])
    assert nothing.labels == () and nothing.accuracy("x") is None
    one_label = dawid_skene([[("x", "a")], [("y", "a"), ("x", "a")]])
    assert one_label.labels == ("a",) and np.allclose(one_label.posteriors, 1)
    assert one_label.accuracy("x") == pytest.approx(1)
    one_reviewer = dawid_skene([[("x", "a")], [("x", "b")], [("x", "a")]], ("a", "b"))
    # one reviewer cannot tell their errors from the classes (the model is not identifiable):
    # the result is only guaranteed to be a proper distribution
    assert np.allclose(one_reviewer.posteriors.sum(axis=1), 1) and one_reviewer.answers == {"x": 3}
    unanswered = dawid_skene([[], [("x", "a")]], ("a", "b"))
    assert np.allclose(unanswered.posteriors[0], unanswered.priors, atol=1e-3)


def test_bad_input_is_refused():
    with pytest.raises(InvalidRequest, match="'e'"):
        dawid_skene([[("x", "e")]], LABELS)
    with pytest.raises(InvalidRequest):
        dawid_skene([], ("a", "a"))
    with pytest.raises(InvalidRequest):
        dawid_skene([], LABELS, max_iter=0)
    with pytest.raises(InvalidRequest):
        dawid_skene([], LABELS, smoothing=-1)


# Dawid and Skene (1979), Table 1: 45 patients rated 1-4 by five anaesthetists; anaesthetist 1
# rated every patient three times (weeks apart), the others once each.
TABLE_1 = """
111 1 1 1 1|333 4 3 3 4|112 2 1 2 2|222 3 1 2 1|222 3 2 2 2|222 3 3 2 2|122 2 1 1 1|333 3 4 3 3
222 2 2 2 3|232 2 2 2 3|444 4 4 4 4|222 3 3 4 3|111 1 1 1 1|222 3 2 1 2|121 1 1 1 1|111 2 1 1 1
111 1 1 1 1|111 1 1 1 1|222 2 2 2 1|222 1 3 2 2|222 2 2 2 2|222 2 2 2 1|222 3 2 2 2|221 2 2 2 2
111 1 1 1 1|111 1 1 1 1|232 2 2 2 2|111 1 1 1 1|111 1 1 1 1|112 1 1 2 1|111 1 1 1 1|333 3 2 3 3
111 1 1 1 1|222 2 2 2 2|222 3 2 3 2|433 4 3 4 3|221 2 2 3 2|232 3 2 3 3|333 3 4 3 2|111 1 1 1 1
111 1 1 1 1|121 2 1 1 1|232 2 2 2 2|121 1 1 1 1|222 2 2 2 2
"""


def table_1() -> list[list[tuple[str, str]]]:
    patients = []
    for cell in TABLE_1.replace("\n", "|").split("|"):
        if not cell.strip():
            continue
        first, *others = cell.split()
        answers = [("1", rating) for rating in first]
        answers += [(str(n), rating) for n, rating in enumerate(others, start=2)]
        patients.append(answers)
    return patients


def test_dawid_and_skene_1979_patients():
    patients = table_1()
    assert len(patients) == 45 and sum(map(len, patients)) == 315
    result = dawid_skene(patients, ("1", "2", "3", "4"), max_iter=500, smoothing=0)
    assert result.converged
    # classes 1 and 2 are the common ones, 4 the rarest (as Table 1's counts show); every
    # patient all raters agree on keeps that class
    assert result.priors[3] < result.priors[2] < min(result.priors[0], result.priors[1])
    # this implementation's unsmoothed maximum likelihood (pinned; the paper's own table of
    # estimates could not be checked here)
    assert result.priors == pytest.approx([0.400, 0.422, 0.112, 0.067], abs=0.002)
    found = result.item_labels()
    for answers, label in zip(patients, found, strict=True):
        if len({rating for _, rating in answers}) == 1:
            assert label == answers[0][1]
    # every anaesthetist is far better than chance (0.25)
    accuracies = {reviewer: result.accuracy(reviewer) for reviewer in "12345"}
    assert all(0.5 < value <= 1 for value in accuracies.values())


def test_reliable_label_overrules_two_spammers_and_needs_known_reviewers():
    # (one careful reviewer among two uniform spammers could not be told apart: all three answers
    # would be independent and uniform; careful reviewers agreeing is what identifies them)
    accuracies = {"good": 0.95, "good2": 0.9, "good3": 0.9, "spam1": 0.25, "spam2": 0.25}
    _, items = crowd(accuracies, 400, 3, seed=5)
    result = dawid_skene(items, LABELS)
    found = reliable_label(result, [("good", "a"), ("spam1", "b"), ("spam2", "b")], 0.9)
    assert found is not None and found[0] == "a" and found[1] >= 0.9
    assert reliable_label(result, [("good", "a"), ("stranger", "b")], 0.5) is None
    assert reliable_label(result, [], 0.5) is None
    assert reliable_label(result, [("spam1", "a"), ("spam2", "b")], 0.9) is None  # no evidence


def test_fit_history_groups_by_task_and_leaves_out_lone_answers():
    rows = [("t1", "x", ["a"]), ("t1", "y", ["a"]), ("t2", "x", ["b"]), ("t3", "x", ["a", "b"])]
    rows += [("t3", "y", ["a"])]
    result, tasks = fit_history(rows)
    assert tasks == 1 and result.answers == {"x": 1, "y": 1} and result.labels == ("a",)
