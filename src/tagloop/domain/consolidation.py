"""Turning reviewers' answers into one verified answer, and measuring how much they agree.

Consolidation is a majority vote; a tie goes to a moderator, whose decision is final
(:func:`moderate`). Agreement: Cohen's kappa (two raters), Fleiss' kappa (items × a fixed
number of raters), Krippendorff's alpha for nominal data (items with any number of answers),
per-label alpha for multi-label answers, and each reviewer's agreement with the consolidated
labels.

A measure that is undefined returns None, never a made-up number: kappa and alpha divide by
the disagreement expected by chance, which is 0 when every answer is the same category
(or there are no pairable answers). Callers show "not measurable" then, next to the raw
share of agreement (:func:`observed_agreement`, :func:`reviewer_agreement`).

Libraries (checked for this module): ``krippendorff`` 0.9.0 (PyPI) is GPL-3.0-or-later, which
tagloop (Apache-2.0) cannot take as a dependency, so the formulas are implemented here (they
are short) and tested against published worked examples. ``crowd-kit`` 1.4.2 (Toloka,
released 2025-10, Apache-2.0, so the licence fits) provides Dawid–Skene, but it hard-requires
pandas, pyarrow, nltk and transformers: far too heavy for the domain layer (pure Python and
numpy). Reliability-weighted consolidation (Dawid–Skene) is written in numpy in
domain/dawid_skene.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import NamedTuple

from tagloop.domain.records import Mode
from tagloop.errors import InvalidRequest

MAX_ANSWERS = 3
"""A2I's TaskCount: at most three answers per task."""


class Answer(NamedTuple):
    """One reviewer's answer to a task."""

    reviewer: str
    labels: tuple[str, ...]
    """The labels chosen (multi-class: exactly one; multi-label: any number)."""
    seconds: float = 0.0
    """Time spent on the task."""
    accepted: bool = False
    """Whether the reviewer accepted the model's label as it was."""


class Status(StrEnum):
    PENDING = "pending"
    """Fewer answers than required so far."""
    CONSOLIDATED = "consolidated"
    """The answers have a majority."""
    NEEDS_MODERATOR = "needs_moderator"
    """A tie: a moderator decides."""
    MODERATED = "moderated"
    """A moderator decided; final."""


@dataclass(frozen=True)
class Outcome:
    """The result of consolidating a task's answers."""

    status: Status
    labels: tuple[str, ...] | None
    """The consolidated labels, or None while pending or waiting for a moderator."""
    votes: dict[str, int]
    """How many answers chose each label."""
    tied: tuple[str, ...] = ()
    """Needs a moderator: the tied classes (multi-class) or the labels chosen by exactly half
    of the answers (multi-label)."""

    @property
    def needs_moderator(self) -> bool:
        return self.status is Status.NEEDS_MODERATOR

    @property
    def final(self) -> bool:
        return self.status in (Status.CONSOLIDATED, Status.MODERATED)


def _check_labels(labels: object, mode: Mode, who: str) -> tuple[str, ...]:
    if not isinstance(labels, tuple) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise InvalidRequest(f"{who}: labels must be a tuple of label names")
    if len(set(labels)) != len(labels):
        raise InvalidRequest(f"{who}: a label is chosen twice")
    if mode is Mode.MULTI_CLASS and len(labels) != 1:
        raise InvalidRequest(f"{who}: a multi-class answer chooses exactly one label, not {len(labels)}")
    return labels


def consolidate(answers: Sequence[Answer], required: int, mode: Mode) -> Outcome:
    """Majority vote over ``answers`` once ``required`` (1-3) of them are in.

    Multi-class: the label most answers chose; a tie for the most votes → moderator.
    Multi-label: a label is in when more than half of the answers include it; a label that
    exactly half include is a tie → moderator (``tied`` lists them; the clear-majority labels
    are not given as ``labels`` then, the moderator decides the whole answer).
    Raises InvalidRequest for a bad ``required``, a reviewer answering twice, or a bad answer.
    """
    if isinstance(required, bool) or not isinstance(required, int) or not 1 <= required <= MAX_ANSWERS:
        raise InvalidRequest(f"required: answers per task must be 1 to {MAX_ANSWERS}, not {required!r}")
    reviewers = [answer.reviewer for answer in answers]
    if len(set(reviewers)) != len(reviewers):
        raise InvalidRequest("answers: a reviewer answered the same task twice")
    votes: Counter[str] = Counter()
    for answer in answers:
        votes.update(_check_labels(answer.labels, mode, f"answer of {answer.reviewer}"))
    counts = dict(sorted(votes.items(), key=lambda item: (-item[1], item[0])))
    if len(answers) < required:
        return Outcome(Status.PENDING, None, counts)
    if mode is Mode.MULTI_CLASS:
        most = max(counts.values())
        leaders = tuple(label for label, count in counts.items() if count == most)
        if len(leaders) > 1:
            return Outcome(Status.NEEDS_MODERATOR, None, counts, leaders)
        return Outcome(Status.CONSOLIDATED, leaders, counts)
    total = len(answers)
    tied = tuple(label for label, count in counts.items() if 2 * count == total)
    if tied:
        return Outcome(Status.NEEDS_MODERATOR, None, counts, tied)
    chosen = tuple(label for label, count in counts.items() if 2 * count > total)
    return Outcome(Status.CONSOLIDATED, chosen, counts)


def moderate(outcome: Outcome, decision: tuple[str, ...], mode: Mode) -> Outcome:
    """The moderator's ``decision`` as the final outcome, whatever the answers said.

    A moderator can decide any task (a tie, end-user feedback, or overruling a majority);
    the votes are kept for the record. Multi-class: exactly one label.
    """
    labels = _check_labels(decision, mode, "moderator's decision")
    return Outcome(Status.MODERATED, labels, outcome.votes)


# --- agreement -------------------------------------------------------------------------------


def observed_agreement(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """The share of items two raters labelled the same (None for no items)."""
    _same_length(first, second)
    if not first:
        return None
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first)


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters who labelled the same items (item i: ``first[i]``, ``second[i]``).

    ``(p_o - p_e) / (1 - p_e)``, chance agreement ``p_e`` from each rater's own label shares.
    None when undefined: no items, or ``p_e`` = 1 (both raters used one and the same label
    for every item).
    """
    _same_length(first, second)
    n = len(first)
    if n == 0:
        return None
    observed = Fraction(sum(a == b for a, b in zip(first, second, strict=True)), n)
    left, right = Counter(first), Counter(second)
    expected = Fraction(sum(left[c] * right[c] for c in left), n * n)
    if expected == 1:
        return None
    return float((observed - expected) / (1 - expected))


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa (1971) of a table: one row per item, one column per category, each cell the
    number of raters who put the item in the category; every row sums to the same number of
    raters (at least 2).

    None when undefined: no items, or every rating in one category (chance agreement 1).
    Raises InvalidRequest for rows of different sums or lengths, fewer than 2 raters, or a
    negative count.
    """
    if not counts:
        return None
    width = len(counts[0])
    raters = sum(counts[0])
    for row in counts:
        if len(row) != width or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in row):
            raise InvalidRequest("counts: every row needs one non-negative count per category")
        if sum(row) != raters:
            raise InvalidRequest("counts: every item needs the same number of ratings")
    if raters < 2:
        raise InvalidRequest("counts: Fleiss' kappa needs at least 2 raters per item")
    items = len(counts)
    agreement = Fraction(
        sum(sum(c * c for c in row) - raters for row in counts), items * raters * (raters - 1)
    )
    totals = [sum(row[j] for row in counts) for j in range(width)]
    expected = Fraction(sum(t * t for t in totals), (items * raters) ** 2)
    if expected == 1:
        return None
    return float((agreement - expected) / (1 - expected))


def category_counts(items: Sequence[Sequence[Hashable]]) -> list[list[int]]:
    """The table :func:`fleiss_kappa` takes, from each item's list of ratings (columns in
    sorted order of the categories seen)."""
    categories = sorted({value for ratings in items for value in ratings}, key=repr)
    column = {value: j for j, value in enumerate(categories)}
    table = []
    for ratings in items:
        row = [0] * len(categories)
        for value in ratings:
            row[column[value]] += 1
        table.append(row)
    return table


def krippendorff_alpha(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal data: each unit (item) the values its raters gave, any
    number of them (missing answers simply left out).

    Units with fewer than two values cannot be paired and do not count (as Krippendorff's
    coincidence matrix prescribes). ``alpha = 1 - (n - 1) (n - Σ o_cc) / (n² - Σ n_c²)`` with
    ``o`` the coincidence matrix, ``n_c`` its marginals and ``n`` the pairable values.
    None when undefined: no pairable values, or all of them the same (no expected disagreement).
    """
    agree = Fraction(0)  # Σ_c o_cc
    marginals: Counter[Hashable] = Counter()
    for unit in units:
        m = len(unit)
        if m < 2:
            continue
        values = Counter(unit)
        marginals.update(values)
        agree += Fraction(sum(k * (k - 1) for k in values.values()), m - 1)
    n = sum(marginals.values())
    expected = n * n - sum(k * k for k in marginals.values())
    if n == 0 or expected == 0:
        return None
    return float(1 - (n - 1) * (n - agree) / expected)


def label_alpha(tasks: Iterable[Sequence[Answer]], labels: Iterable[str]) -> dict[str, float | None]:
    """Multi-label: each label's Krippendorff alpha, reading every answer as "has the label: yes/no"."""
    answered = [[frozenset(answer.labels) for answer in answers] for answers in tasks]
    return {
        label: krippendorff_alpha([[label in chosen for chosen in unit] for unit in answered])
        for label in labels
    }


class ReviewerAgreement(NamedTuple):
    """How often one reviewer's answers matched the consolidated labels."""

    answers: int
    agreed: int

    @property
    def share(self) -> float:
        return self.agreed / self.answers if self.answers else 0.0


def reviewer_agreement(tasks: Iterable[tuple[Sequence[Answer], Outcome]]) -> dict[str, ReviewerAgreement]:
    """Each reviewer's agreement with the final labels of the tasks they answered (an answer
    agrees when it chose exactly the final labels, in any order). Tasks without a final
    outcome (pending, waiting for a moderator) do not count."""
    tally: dict[str, list[int]] = {}
    for answers, outcome in tasks:
        if not outcome.final or outcome.labels is None:
            continue
        final = frozenset(outcome.labels)
        for answer in answers:
            counts = tally.setdefault(answer.reviewer, [0, 0])
            counts[0] += 1
            counts[1] += frozenset(answer.labels) == final
    return {reviewer: ReviewerAgreement(total, agreed) for reviewer, (total, agreed) in sorted(tally.items())}


def _same_length(first: Sequence[Hashable], second: Sequence[Hashable]) -> None:
    if len(first) != len(second):
        raise InvalidRequest(f"ratings: the two raters rated {len(first)} and {len(second)} items")
