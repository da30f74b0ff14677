"""Candidates for a query strategy, from a trained model and the pool's texts.

The review queue's fill (and ``tagloop simulate``) score the pool with a model and hand the
scores, and for batch-aware strategies the model's own feature rows, to
``domain.strategies``: ``strategy(name).select(candidates(model, texts, ...), count, rng)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from tagloop.domain.records import Mode
from tagloop.domain.strategies import Candidates
from tagloop.errors import InvalidRequest
from tagloop.recipes.base import TextModel, chunks

CHUNK = 2_000
"""Documents scored (and featurized) at a time, to bound memory on a large pool."""


def feature_rows(model: TextModel, texts: Sequence[str]) -> sp.csr_matrix:
    """The model's feature rows of ``texts`` (l2-normalized TF-IDF for the default recipe).

    A recipe offers them as a ``features`` attribute with ``transform(texts, dtype)``; a model
    without one cannot serve a strategy that needs features (InvalidRequest says so)."""
    transform: Any = getattr(getattr(model, "features", None), "transform", None)
    if not callable(transform):
        raise InvalidRequest(
            f"recipe {model.recipe!r} offers no feature rows: use a strategy that needs only "
            "scores (random, least-confidence, margin, entropy)"
        )
    parts = [sp.csr_matrix(transform(batch, np.float64)) for batch in chunks(texts, CHUNK)]
    if not parts:
        size = getattr(getattr(model, "features", None), "size", 0)
        return sp.csr_matrix((0, int(size)), dtype=np.float64)
    return sp.csr_matrix(sp.vstack(parts, format="csr"))


def candidates(
    model: TextModel,
    texts: Sequence[str],
    labelled_texts: Sequence[str] | None = None,
    need_features: bool = False,
) -> Candidates:
    """Scores of ``texts`` by ``model`` (via ``model.scores``, in chunks) and, when
    ``need_features``, the feature rows of ``texts`` and of ``labelled_texts``."""
    width = len(model.labels)
    parts = [np.asarray(model.scores(batch), dtype=np.float64) for batch in chunks(texts, CHUNK)]
    scores = np.vstack(parts) if parts else np.zeros((0, width))
    features = labelled = None
    if need_features:
        features = feature_rows(model, texts)
        if labelled_texts is not None:
            labelled = feature_rows(model, labelled_texts)
    return Candidates(scores, features, labelled, multi_label=model.mode is Mode.MULTI_LABEL)
