"""Reviewer-reliability-weighted consolidation: the Dawid–Skene model, fitted by EM.

Reference: A. P. Dawid and A. M. Skene, "Maximum likelihood estimation of observer error-rates
using the EM algorithm", Journal of the Royal Statistical Society, Series C (Applied
Statistics) 28(1), 1979, pp. 20–28. Each reviewer ``r`` has a confusion matrix ``π_r[k, l]`` =
P(``r`` answers ``l`` | the true class is ``k``); classes have priors ``p_k``; answers are
independent given the true class. EM alternates

- E: ``T[i, k] ∝ p_k · Π_{answers (r, l) of item i} π_r[k, l]`` (the posterior of each item's
  class; logs, so many answers do not underflow);
- M: ``π_r[k, l] ∝ Σ_{items i answered l by r} T[i, k]`` and ``p_k ∝ Σ_i T[i, k]``.

Choices made here (the paper leaves them open):

- Initialisation: each item's share of votes per class (majority vote, soft: a 1–1 tie
  starts at ½–½), as Dawid and Skene suggest.
- Additive (Laplace) smoothing, shaped: each confusion row gets ``smoothing`` pseudo-answers
  per cell (``smoothing × K`` per row), laid out like the reviewer's "one-coin" matrix: their
  overall share of right answers on the diagonal, the rest spread evenly over the wrong
  classes (a Dirichlet prior centred on the one-coin model); each class prior gets
  ``smoothing``. A reviewer with a handful of answers then gets no confusion entry of 0 or 1
  (which would veto or force a class whatever the others say), and the off-diagonal cells,
  which even a busy reviewer fills sparsely when there are many classes, are not estimated
  near 0 from a few answers: plain add-a-little smoothing did that and made the posteriors
  overconfident (benchmarks/consolidation.py: ties "decided with posterior ≥ 0.9" were right
  41–72% of the time with 20 classes at 1 pseudo-answer per row, 86–92% at 5 per cell).
  With many answers per row the pseudo-counts matter less and the full matrix shows.
- Deterministic: no randomness; the class of an item is its posterior's argmax, ties going to
  the class listed first in ``labels``.
- Stops when no posterior moves by more than ``tol`` in one iteration (``converged``), or
  after ``max_iter``.

Multi-class only. Multi-label review tasks are consolidated by majority (a tie to the
moderator): a per-label binary Dawid–Skene would treat each label on its own while the
moderator decides a multi-label answer as a whole, and two or three answers per task rarely
tie in more than one label; see services/review.py.

Libraries checked (2026-12): ``crowd-kit`` 1.4.2 (Toloka, Apache-2.0) implements this model but
requires pandas, pyarrow, nltk, scikit-learn and transformers, far too much for a serving
package; ``judgepanel`` 0.1.0 (MIT, numpy only) is a single release needing Python ≥ 3.12;
``crowdnalysis`` is AGPL-3.0. So it is written here in numpy, crowd-kit's ``DawidSkene`` read
as a reference for the algorithm (no code taken from it). Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tagloop.domain.consolidation import Answer, Outcome
from tagloop.errors import InvalidRequest

Floats = NDArray[np.float64]

SMOOTHING = 5.0
"""Pseudo-answers per cell of a confusion matrix (see the module's docstring)."""


@dataclass(frozen=True)
class DawidSkeneResult:
    """What EM estimated from a set of items' answers."""

    labels: tuple[str, ...]
    """The classes, in the order of the columns below."""
    posteriors: Floats
    """items × classes: P(item's true class | all answers)."""
    confusion: Mapping[str, Floats]
    """Each reviewer's classes × classes matrix: row = true class, column = answer; rows sum to 1."""
    priors: Floats
    """P(class) over the items."""
    answers: Mapping[str, int]
    """How many answers each reviewer gave."""
    iterations: int
    converged: bool

    def accuracy(self, reviewer: str) -> float | None:
        """P(the reviewer answers an item's true class): ``Σ_k p_k π[k, k]``; None for a
        reviewer not in the data."""
        matrix = self.confusion.get(reviewer)
        if matrix is None:
            return None
        return float(np.dot(self.priors, np.diag(matrix)))

    def item_labels(self) -> list[str]:
        """Each item's most probable class (ties: the class listed first)."""
        return [self.labels[int(k)] for k in np.argmax(self.posteriors, axis=1)]

    def posterior(self, answers: Sequence[tuple[str, str]]) -> Floats:
        """The posterior of a new item's class from its ``answers`` (reviewer, label), with the
        confusion matrices and priors estimated here (not refitted). A reviewer this estimate
        does not know, or a label it does not know, adds no evidence."""
        index = {label: k for k, label in enumerate(self.labels)}
        log = np.log(self.priors)
        for reviewer, label in answers:
            matrix = self.confusion.get(reviewer)
            column = index.get(label)
            if matrix is not None and column is not None:
                log = log + np.log(matrix[:, column])
        return _normalise(log[np.newaxis, :])[0]


def _normalise(log: Floats) -> Floats:
    """Rows of log-probabilities (up to a constant) → probabilities."""
    shifted = np.exp(log - log.max(axis=1, keepdims=True))
    out: Floats = shifted / shifted.sum(axis=1, keepdims=True)
    return out


def dawid_skene(
    items: Sequence[Sequence[tuple[str, str]]],
    labels: Sequence[str] | None = None,
    *,
    max_iter: int = 200,
    tol: float = 1e-5,
    smoothing: float = SMOOTHING,
) -> DawidSkeneResult:
    """Fit Dawid–Skene to ``items``, each the (reviewer, label) answers one item received.

    ``labels``: the classes in the order results use (and ties favour); default: the labels
    seen, sorted. A reviewer may answer an item more than once (the 1979 data does). Items
    without answers get the priors as posterior. Raises InvalidRequest for a label not in
    ``labels``, a label listed twice, or bad parameters.
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InvalidRequest(f"max_iter: a positive number of iterations, not {max_iter!r}")
    if not tol > 0 or not smoothing >= 0:
        raise InvalidRequest("tol must be positive and smoothing not negative")
    if labels is None:
        labels = sorted({label for answers in items for _, label in answers})
    classes = tuple(labels)
    if len(set(classes)) != len(classes):
        raise InvalidRequest("labels: a label is listed twice")
    column = {label: k for k, label in enumerate(classes)}
    reviewers = sorted({reviewer for answers in items for reviewer, _ in answers})
    row = {reviewer: r for r, reviewer in enumerate(reviewers)}
    n_items, n_classes, n_reviewers = len(items), len(classes), len(reviewers)

    item_of: list[int] = []
    reviewer_of: list[int] = []
    label_of: list[int] = []
    for i, answers in enumerate(items):
        for reviewer, label in answers:
            if label not in column:
                raise InvalidRequest(f"answers: {label!r} is not one of the labels")
            item_of.append(i)
            reviewer_of.append(row[reviewer])
            label_of.append(column[label])
    item = np.asarray(item_of, dtype=np.intp)
    who = np.asarray(reviewer_of, dtype=np.intp)
    said = np.asarray(label_of, dtype=np.intp)
    counts = dict(zip(reviewers, np.bincount(who, minlength=n_reviewers).tolist(), strict=True))

    if n_classes == 0 or n_items == 0:
        return DawidSkeneResult(
            classes,
            np.zeros((n_items, n_classes)),
            {reviewer: np.eye(n_classes) for reviewer in reviewers},
            np.full(n_classes, 1.0 / n_classes) if n_classes else np.zeros(0),
            counts,
            0,
            True,
        )

    # initialisation: each item's vote shares (an item without answers: uniform)
    votes = np.zeros((n_items, n_classes))
    np.add.at(votes, (item, said), 1.0)
    totals = votes.sum(axis=1, keepdims=True)
    posteriors = np.divide(votes, totals, out=np.full_like(votes, 1.0 / n_classes), where=totals > 0)

    priors, confusion = _m_step(posteriors, item, who, said, n_reviewers, smoothing)
    iterations, converged = 0, False
    while iterations < max_iter:
        iterations += 1
        evidence = np.log(confusion[who, :, said])  # answers × classes
        log = np.log(priors) + np.column_stack(
            [np.bincount(item, weights=evidence[:, k], minlength=n_items) for k in range(n_classes)]
        )
        updated = _normalise(log)
        change = float(np.max(np.abs(updated - posteriors)))
        posteriors = updated
        priors, confusion = _m_step(posteriors, item, who, said, n_reviewers, smoothing)
        if change < tol:
            converged = True
            break
    return DawidSkeneResult(
        classes,
        posteriors,
        {reviewer: confusion[r] for r, reviewer in enumerate(reviewers)},
        priors,
        counts,
        iterations,
        converged,
    )


def _m_step(
    posteriors: Floats,
    item: NDArray[np.intp],
    who: NDArray[np.intp],
    said: NDArray[np.intp],
    n_reviewers: int,
    smoothing: float,
) -> tuple[Floats, Floats]:
    """Priors and confusion matrices (reviewers × true × answered) from the posteriors, each
    confusion row with ``smoothing`` × classes pseudo-answers shaped like the reviewer's one-coin
    matrix, each prior with ``smoothing``."""
    n_classes = posteriors.shape[1]
    mass = np.maximum(posteriors.sum(axis=0) + smoothing, 1e-12)  # finite logs
    priors: Floats = mass / mass.sum()
    cell = who * n_classes + said  # (reviewer, answer) of each answer, flattened
    tally = np.stack(
        [
            np.bincount(cell, weights=posteriors[item, k], minlength=n_reviewers * n_classes)
            for k in range(n_classes)
        ]
    )  # true class × (reviewer, answer)
    tally = tally.reshape(n_classes, n_reviewers, n_classes).transpose(1, 0, 2)
    if smoothing > 0:
        # each reviewer's overall accuracy (right / answered, itself Laplace-smoothed), on the
        # diagonal of the pseudo-answers; their errors spread evenly over the other classes
        right = np.trace(tally, axis1=1, axis2=2)
        accuracy = (right + 1.0) / (tally.sum(axis=(1, 2)) + 2.0)
        if n_classes == 1:
            accuracy = np.ones_like(accuracy)
        wrong = (1.0 - accuracy) / max(1, n_classes - 1)
        shape = wrong[:, None, None] + (accuracy - wrong)[:, None, None] * np.eye(n_classes)
        tally = tally + smoothing * n_classes * shape
    sums = tally.sum(axis=2, keepdims=True)
    # a row with no mass at all (smoothing 0, a class never given to the reviewer): uniform
    confusion: Floats = np.divide(tally, sums, out=np.full_like(tally, 1.0 / n_classes), where=sums > 0)
    if smoothing == 0:  # keep logs finite
        confusion = np.clip(confusion, 1e-12, None)
        confusion /= confusion.sum(axis=2, keepdims=True)
    return priors, confusion


def fit_history(
    answers: Iterable[tuple[str, str, Sequence[str]]], *, min_answers: int = 2, **options: Any
) -> tuple[DawidSkeneResult, int]:
    """Fit on a classifier's answered history: ``answers`` as (task id, reviewer, labels) rows
    of multi-class answers, grouped here by task id. Tasks with fewer than ``min_answers``
    one-label answers are left out (an item one reviewer answered alone only tells the model
    that reviewer agrees with themself). Returns the fit and the number of tasks it used."""
    tasks: dict[str, list[tuple[str, str]]] = {}
    for task_id, reviewer, labels in answers:
        if len(labels) == 1:
            tasks.setdefault(task_id, []).append((reviewer, labels[0]))
    items = [pairs for pairs in tasks.values() if len(pairs) >= min_answers]
    return dawid_skene(items, **options), len(items)


def reliable_label(
    result: DawidSkeneResult, answers: Sequence[tuple[str, str]], threshold: float
) -> tuple[str, float] | None:
    """The class of a new item with ``answers`` (reviewer, label) and its posterior, when that
    posterior reaches ``threshold`` and every reviewer of the item is known to ``result`` (a
    reviewer without history would add no evidence, and the priors alone decide nothing);
    None otherwise."""
    if not answers or any(reviewer not in result.confusion for reviewer, _ in answers):
        return None
    posterior = result.posterior(answers)
    if posterior.size == 0:
        return None
    best = int(np.argmax(posterior))
    if posterior[best] < threshold:
        return None
    return result.labels[best], float(posterior[best])


def decide(
    result: DawidSkeneResult, answers: Sequence[Answer], outcome: Outcome, threshold: float
) -> str | None:
    """How reliabilities change a multi-class task's majority-vote ``outcome``: the label
    :func:`reliable_label` gives the ``answers`` when it settles a tie (one of the tied labels)
    or overrules the majority; None when majority vote stands (or the tie goes to the
    moderator)."""
    if len(answers) < 2 or any(len(answer.labels) != 1 for answer in answers):
        return None
    found = reliable_label(result, [(answer.reviewer, answer.labels[0]) for answer in answers], threshold)
    if found is None:
        return None
    label = found[0]
    if outcome.needs_moderator:
        return label if label in outcome.tied else None
    return label if outcome.labels is not None and (label,) != tuple(outcome.labels) else None
