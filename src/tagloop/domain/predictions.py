"""What a model says about one text, as every layer below the doors passes it around.

The doors (the native API, the Comprehend API, the batch writer, the CLI) turn a
:class:`Prediction` into their own wire shape; nothing below them knows those shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tagloop.domain.records import Mode
from tagloop.errors import TagloopError


class Prediction(NamedTuple):
    """One text's prediction: the labels shown for it, best first, and their scores.

    Multi-class: the classes by score (every class, or the best ``top``); multi-label: the
    labels the model assigns, best first (at most ``top``; possibly none). A text that could
    not be classified (empty, too large) has no labels and says why in ``error``.
    A NamedTuple: built once per text on the serving hot path, it must be cheap.
    """

    labels: list[str]
    """Label names, best first."""
    scores: list[float]
    """Their calibrated scores (plain floats, not numpy scalars), in the same order."""
    mode: Mode
    """The model's mode: whether ``labels`` are ranked classes or assigned labels."""
    error: TagloopError | None = None
    """Why the text could not be classified (``labels`` and ``scores`` are empty then)."""

    @classmethod
    def failed(cls, mode: Mode, error: TagloopError) -> Prediction:
        """The prediction of a text that could not be classified."""
        return cls([], [], mode, error)

    @property
    def best(self) -> str | None:
        """The first label shown, if any."""
        return self.labels[0] if self.labels else None


def ranked(
    labels: Sequence[str],
    mode: Mode,
    scores: np.ndarray,
    picks: Sequence[Sequence[int]],
    top: int | None = None,
) -> list[Prediction]:
    """One prediction per row of ``scores`` (documents × ``labels``), with one sort for all.

    Multi-class: every class by score, highest first (ties keep the labels' order), or the
    ``top`` best; multi-label: the labels of ``picks`` (the model's decisions, best first),
    at most ``top``. ``top`` None or 0 means no limit.
    """
    rows = scores.tolist()  # plain floats, and faster to index than the array
    limit = top or None
    if mode is Mode.MULTI_CLASS:
        orders = np.argsort(-scores, axis=1, kind="stable")[:, :limit].tolist()
    else:
        orders = [list(chosen)[:limit] for chosen in picks]
    return [
        Prediction([labels[i] for i in order], [row[i] for i in order], mode)
        for row, order in zip(rows, orders, strict=True)
    ]
