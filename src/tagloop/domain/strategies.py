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
import scipy.sparse as sp

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


# ---- batch-aware strategies: a batch that covers the doubt, not ten copies of one document -----
def _rows(candidates: Candidates, name: str) -> sp.csr_matrix:
    if candidates.features is None:
        raise InvalidRequest(f"strategy {name} needs the model's feature rows of the candidates")
    features = sp.csr_matrix(candidates.features, dtype=np.float64)
    if features.shape[0] != len(candidates.scores):
        raise InvalidRequest(
            f"{features.shape[0]} feature rows for {len(candidates.scores)} scored candidates"
        )
    return features


def _dense_projection(features: sp.csr_matrix, rng: np.random.Generator, dims: int = 64) -> np.ndarray:
    """Rows as short dense l2-normalized vectors for clustering: their leading ``dims`` LSA
    components, computed from the rows' Gram matrix (rows × rows: a shortlist is short, while
    its TF-IDF rows are hundreds of thousands of columns wide). With ``dims`` at least the
    number of rows the vectors keep every distance of the rows exactly."""
    gram = np.asarray((features @ features.T).toarray(), dtype=np.float64)
    m = gram.shape[0]
    if m <= 4 * dims:
        values, vectors = np.linalg.eigh(gram)
        values, vectors = values[-dims:], vectors[:, -dims:]
    else:
        from scipy.sparse.linalg import eigsh

        start = rng.standard_normal(m)
        values, vectors = eigsh(gram, k=dims, which="LA", v0=start)
    dense = vectors * np.sqrt(np.maximum(values, 0.0))
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return np.asarray(dense / np.where(norms > 0, norms, 1.0))


class ClusterMargin:
    """Margin sampling spread over clusters: the ``PREFILTER × count`` lowest-margin documents
    are clustered into ``count`` groups (k-means on their TF-IDF rows reduced to 64 LSA
    dimensions, weighted by their uncertainty), and each group gives its lowest-margin document; the picks
    come in margin order. Near-duplicates share a cluster, so a batch holds at most one of them.

    Zhdanov, "Diverse mini-batch Active Learning", arXiv:1901.05954, 2019 (pre-filter by margin,
    weighted k-means); Citovsky et al., "Batch Active Learning at Scale" (Cluster-Margin),
    NeurIPS 2021 (margin candidates, one pick per cluster).
    """

    name = "cluster-margin"
    needs_features = True
    PREFILTER = 10

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        n = _count(candidates, count)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        features = _rows(candidates, self.name)
        doubt = margin(candidates.scores, candidates.multi_label)  # in [-1, 0]
        shortlist = ranked(doubt, min(len(doubt), self.PREFILTER * n))
        if len(shortlist) <= n:
            return shortlist
        from sklearn.cluster import KMeans

        points = _dense_projection(features[shortlist], rng)
        weights = 1.0 + doubt[shortlist] + 1e-3  # 1 - gap: the most doubtful weigh most
        clusters = KMeans(n_clusters=n, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit_predict(
            points, sample_weight=weights
        )
        picks = []
        for cluster in np.unique(clusters):
            members = shortlist[clusters == cluster]
            picks.append(members[np.argmax(doubt[members])])  # shortlist order breaks ties
        picks_array = np.asarray(picks, dtype=np.int64)
        return picks_array[np.argsort(-doubt[picks_array], kind="stable")]


class Badge:
    """BADGE: k-means++ seeding over the gradient embeddings of the model's last layer.

    For a linear model over TF-IDF rows ``x`` with scores ``p`` and hypothesized labels ``ŷ``
    (the best label; multi-label: every label scored ≥ 0.5), the loss gradient with respect to
    the weights is the outer product ``g = (p - ŷ) ⊗ x``: large when the model is unsure, and
    pointing where the document lies. Its norm and inner products factor,
    ``<g_a, g_b> = <u_a, u_b>·<x_a, x_b>`` with ``u = p - ŷ``, so nothing of size labels × features
    is built. The first pick is the largest gradient, each next one is drawn with probability
    proportional to its squared distance to the nearest pick (k-means++): an exact
    near-duplicate of a pick has probability 0.

    Ash, Zhang, Krishnamurthy, Langford & Agarwal, "Deep Batch Active Learning by Diverse,
    Uncertain Gradient Lower Bounds", ICLR 2020; Arthur & Vassilvitskii, "k-means++", SODA 2007.
    """

    name = "badge"
    needs_features = True

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        n = _count(candidates, count)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        features = _rows(candidates, self.name)
        scores = np.asarray(candidates.scores, dtype=np.float64)
        hypothesis = np.zeros_like(scores)
        if candidates.multi_label:
            hypothesis[scores >= 0.5] = 1.0
        else:
            hypothesis[np.arange(len(scores)), scores.argmax(axis=1)] = 1.0
        u = scores - hypothesis
        u_norm2 = np.einsum("ij,ij->i", u, u)
        x_norm2 = np.asarray(features.multiply(features).sum(axis=1)).ravel()
        norm2 = u_norm2 * x_norm2
        picks = [int(np.argmax(norm2))]
        nearest = np.full(len(scores), np.inf)
        by_column = features.T.tocsr()  # a pick's cosines touch only the columns of its words
        for _ in range(n - 1):
            c = picks[-1]
            cross = (u @ u[c]) * (features[c] @ by_column).toarray().ravel()
            nearest = np.minimum(nearest, np.maximum(norm2 + norm2[c] - 2.0 * cross, 0.0))
            nearest[picks] = 0.0
            total = nearest.sum()
            if not total > 1e-12:
                break  # every candidate left duplicates a pick
            picks.append(int(rng.choice(len(nearest), p=nearest / total)))
        return np.asarray(picks, dtype=np.int64)


class CoreSet:
    """Core-set (greedy k-center): each pick is the candidate farthest (cosine distance of the
    TF-IDF rows) from everything labelled or picked so far, so the labelled set covers the pool.
    Uses no score: pure diversity (it tends to pick outliers on text; compare it in a simulation).

    Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach",
    ICLR 2018 (k-Center-Greedy).
    """

    name = "coreset"
    needs_features = True
    CHUNK = 2_048

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        n = _count(candidates, count)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        features = _rows(candidates, self.name)
        closest = np.full(features.shape[0], -np.inf)  # highest cosine to a labelled or picked row
        if candidates.labelled is not None and candidates.labelled.shape[0]:
            labelled_t = sp.csr_matrix(candidates.labelled, dtype=np.float64).T.tocsc()
            for start in range(0, features.shape[0], self.CHUNK):
                block = features[start : start + self.CHUNK] @ labelled_t
                closest[start : start + self.CHUNK] = block.max(axis=1).toarray().ravel()
        picks: list[int] = []
        by_column = features.T.tocsr()  # a pick's cosines touch only the columns of its words
        for _ in range(n):
            distance = 1.0 - closest
            distance[picks] = -np.inf
            pick = int(np.argmax(distance))  # the first of equals
            if picks and not distance[pick] > 1e-9:
                break  # everything left duplicates a pick or a labelled document
            picks.append(pick)
            closest = np.maximum(closest, (features[pick] @ by_column).toarray().ravel())
        return np.asarray(picks, dtype=np.int64)


class DensityWeighted:
    """Information density: entropy × the candidate's mean cosine similarity to the pool
    (a doubtful document that is typical of many others, not an outlier), taken greedily and
    skipping any candidate whose cosine with a pick of the batch is ``DUPLICATE_COSINE`` or more.

    Settles & Craven, "An Analysis of Active Learning Strategies for Sequence Labeling Tasks",
    EMNLP 2008 (information density, β = 1); the skip rule is the near-duplicate filter of
    this module.
    """

    name = "density"
    needs_features = True
    DUPLICATE_COSINE = 0.8

    def select(self, candidates: Candidates, count: int, rng: np.random.Generator) -> np.ndarray:
        n = _count(candidates, count)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        features = _rows(candidates, self.name)
        centre = np.asarray(features.mean(axis=0)).ravel()
        density = np.maximum(np.asarray(features @ centre).ravel(), 0.0)
        value = entropy(candidates.scores, candidates.multi_label) * density
        picks: list[int] = []
        picked_rows: sp.csr_matrix | None = None
        for index in np.argsort(-value, kind="stable"):
            row = features[int(index)]
            if picked_rows is not None and (picked_rows @ row.T).max() >= self.DUPLICATE_COSINE:
                continue
            picks.append(int(index))
            picked_rows = row if picked_rows is None else sp.vstack([picked_rows, row], format="csr")
            if len(picks) == n:
                break
        return np.asarray(picks, dtype=np.int64)


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "random": RandomSampling,
    "least-confidence": LeastConfidence,
    "margin": Margin,
    "entropy": Entropy,
    "cluster-margin": ClusterMargin,
    "badge": Badge,
    "coreset": CoreSet,
    "density": DensityWeighted,
}
"""Strategy name -> a factory of it (each call makes a fresh strategy)."""


def strategy(name: str) -> Strategy:
    """The strategy called ``name``; InvalidRequest naming the known ones otherwise."""
    factory = STRATEGIES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise InvalidRequest(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return factory()
