"""The score histogram: how sure a version is on its test documents, right and wrong apart
(mistakes with high scores are the ones review thresholds cannot catch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagloop.plots.style import BAD, GOOD, svg_figure


def score_histogram(
    scores: Sequence[float] | Any, correct: Sequence[bool] | Any, bins: int = 20, alt: str | None = None
) -> str:
    """SVG stacked histogram of each test document's best score, split by right and wrong."""
    import numpy as np

    values = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    right = np.asarray(correct, dtype=bool)
    if values.shape != right.shape:
        raise ValueError("scores and correct differ in length")
    edges = np.linspace(0.0, 1.0, bins + 1)
    right_counts, _ = np.histogram(values[right], bins=edges)
    wrong_counts, _ = np.histogram(values[~right], bins=edges)
    if alt is None:
        median = f", median best score {float(np.median(values)):.2f}" if len(values) else ""
        alt = (
            f"Histogram of the best score of {len(values):,} test documents: "
            f"{int(right.sum()):,} right, {int((~right).sum()):,} wrong{median}."
        )
    with svg_figure(alt, width=5.2, height=3.4) as (_figure, axes, out):
        width = 1.0 / bins
        axes.bar(
            edges[:-1], right_counts, width=width, align="edge", color=GOOD, edgecolor="white", label="right"
        )
        axes.bar(
            edges[:-1],
            wrong_counts,
            width=width,
            align="edge",
            bottom=right_counts,
            color=BAD,
            edgecolor="white",
            label="wrong",
        )
        axes.set_xlim(0, 1)
        axes.set_xlabel("best score")
        axes.set_ylabel("test documents")
        axes.set_title("scores of the test documents")
        axes.legend(loc="upper left")
    return out[0]
