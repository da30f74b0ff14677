"""Query strategies: which pool documents are most worth a person's time.

Every strategy is a small class behind one interface (:class:`Strategy`): given the model's
calibrated scores of the pool documents (and, for the batch-aware ones, the model's own feature
rows of the pool and of the labelled documents) it returns the indices of at most ``count``
documents, the most useful first. Strategies are pure computation: the same inputs and the same
``rng`` give the same picks. :func:`strategy` builds one by name (``STRATEGIES``).

Uncertainty, per document (higher = more worth asking):

- multi-class, scores ``p`` summing to 1: *least-confidence* ``1 - max p``; *margin*
  ``-(p₁ - p₂)`` (the two best scores); *entropy* ``-Σ p log p``.
- multi-label, each label a calibrated yes/no ``p_j``: every label is a binary decision, and a
  document is as doubtful as its most doubtful label: *least-confidence* ``max_j min(p_j, 1-p_j)``,
  *margin* ``-min_j |2 p_j - 1|`` (both rank documents alike: the label closest to 0.5); *entropy*
  sums the binary entropies of the labels (several half-sure labels count more than one).

Batch-aware strategies avoid spending a batch on near-duplicates (a plain uncertainty ranking
often picks ten copies of one confusing e-mail): see :class:`ClusterMargin`, :class:`Badge`,
:class:`CoreSet` and :class:`DensityWeighted`. Their feature rows are l2-normalized TF-IDF rows
(the default recipe's), so a dot product is a cosine similarity.

Libraries considered (issue 14): small-text (MIT; last release 1.4.1, Aug 2024) and
scikit-activeml (BSD-3 plus Apache-2.0/BSD-2 parts; 1.0.1, Oct 2026, active). Both are sound,
but neither fits without an adapter larger than the strategies themselves: small-text's
strategies take its own classifier and dataset objects (``query(clf, dataset, indices_unlabeled,
indices_labeled, y, n)``), and its core-set embeds densely; scikit-activeml's ``query(X, y, clf)``
refits an sklearn-style classifier of its own wrappers and computes dense distances, and it
requires matplotlib and makefun at run time. tagloop's models are recipes
(``recipes.base.TextModel``) whose calibrated scores and sparse features we already have, and each
strategy here is 10-40 lines of numpy over them, so we use neither and cite the papers instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tagloop.errors import InvalidRequest

__all__ = ["STRATEGIES", "Candidates", "Strategy", "strategy"]


@dataclass(frozen=True)
class Candidates:
    """What a strategy chooses from: the pool documents as the model sees them."""

    scores: np.ndarray
    """(n × labels) calibrated scores of the pool documents."""
    features: Any = None
    """(n × d) scipy.sparse CSR feature rows (the model's, l2-normalized), or None."""
    labelled: Any = None
    """(m × d) feature rows of the labelled (training) documents, or None."""
    multi_label: bool = False


class Strategy(Protocol):
    name: str
    needs_features: bool

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        """Indices into the candidates, most worth a person's time first; at most ``count``."""
        ...


# ---- uncertainty measures --------------------------------------------------------------------
def least_confidence(scores: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Higher = less sure (see the module docstring for multi-label)."""
    scores = np.asarray(scores, dtype=np.float64)
    if multi_label:
        return np.asarray(np.minimum(scores, 1.0 - scores).max(axis=1, initial=0.0))
    return np.asarray(1.0 - scores.max(axis=1, initial=0.0))


def margin(scores: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Higher = less sure: minus the gap between the two best scores (multi-label: minus the
    distance of the most doubtful label from 0.5, doubled)."""
    scores = np.asarray(scores, dtype=np.float64)
    if multi_label:
        return np.asarray(-np.abs(2.0 * scores - 1.0).min(axis=1, initial=1.0))
    if scores.shape[1] < 2:
        return np.asarray(-np.abs(2.0 * scores[:, 0] - 1.0)) if scores.shape[1] else np.zeros(len(scores))
    top2 = -np.partition(-scores, 1, axis=1)[:, :2]
    return np.asarray(-(top2[:, 0] - top2[:, 1]))


def entropy(scores: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Higher = less sure: Shannon entropy (nats) of the scores; multi-label: the sum of each
    label's binary entropy."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
        if not multi_label:
            return np.asarray(-plogp.sum(axis=1))
        q = 1.0 - p
        qlogq = np.where(q > 0, q * np.log(q), 0.0)
    return np.asarray(-(plogp + qlogq).sum(axis=1))


def ranked(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` highest values, highest first; ties keep index order."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    return order[: max(0, count)].astype(np.int64)


def _count(candidates: Candidates, count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise InvalidRequest(f"count: expected a whole number of at least 0, got {count!r}")
    return min(int(count), len(candidates.scores))


# ---- strategies that rank documents one by one ------------------------------------------------
class RandomSampling:
    """Uniform random sample of the pool: the baseline every strategy must beat."""

    name = "random"
    needs_features = False

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        n = _count(candidates, count)
        return rng.permutation(len(candidates.scores))[:n].astype(np.int64)


class LeastConfidence:
    """Least-confidence sampling: the documents whose best label is least sure.

    Lewis & Gale, "A sequential algorithm for training text classifiers", SIGIR 1994;
    Culotta & McCallum, "Reducing labeling effort for structured prediction tasks", AAAI 2005.
    """

    name = "least-confidence"
    needs_features = False

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        return ranked(least_confidence(candidates.scores, candidates.multi_label), _count(candidates, count))


class Margin:
    """Margin sampling: the smallest gap between the two best labels.

    Scheffer, Decomain & Wrobel, "Active hidden Markov models for information extraction",
    IDA 2001.
    """

    name = "margin"
    needs_features = False

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        return ranked(margin(candidates.scores, candidates.multi_label), _count(candidates, count))


class Entropy:
    """Entropy sampling: the highest Shannon entropy of the scores.

    Settles, "Active Learning Literature Survey", University of Wisconsin-Madison TR 1648, 2009
    (section 3.1); Shannon, "A mathematical theory of communication", 1948.
    """

    name = "entropy"
    needs_features = False

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        return ranked(entropy(candidates.scores, candidates.multi_label), _count(candidates, count))


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "random": RandomSampling,
    "least-confidence": LeastConfidence,
    "margin": Margin,
    "entropy": Entropy,
}
"""Strategy name -> a factory of it (each call makes a fresh strategy)."""


def strategy(name: str) -> Strategy:
    """The strategy called ``name``; InvalidRequest naming the known ones otherwise."""
    factory = STRATEGIES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise InvalidRequest(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return factory()
