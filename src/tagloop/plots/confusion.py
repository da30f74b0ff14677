"""The confusion-matrix heatmap of a multi-class version: counts in the cells, colour by the
share of the true label's documents (so a small label's mistakes show as loudly as a large
one's)."""

from __future__ import annotations

from collections.abc import Sequence

from tagloop.plots.style import SEQUENTIAL, svg_figure
from tagloop.plots.text import short

ANNOTATE_UP_TO = 30
"""Counts are written in the cells up to this many labels (beyond, the cells get too small)."""


def confusion_summary(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """One sentence for the alt text: documents, the diagonal's share, the largest confusion."""
    total = sum(sum(row) for row in matrix)
    right = sum(matrix[i][i] for i in range(len(labels)))
    worst = max(
        ((matrix[i][j], i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j),
        default=(0, 0, 0),
    )
    text = (
        f"Confusion matrix of {len(labels)} labels on {total:,} test documents: "
        f"{right:,} on the diagonal ({100 * right / total if total else 0:.1f}%)."
    )
    if worst[0]:
        text += f" Largest confusion: {labels[worst[1]]} predicted as {labels[worst[2]]} ({worst[0]:,})."
    return text


def confusion_heatmap(labels: Sequence[str], matrix: Sequence[Sequence[int]], alt: str | None = None) -> str:
    """SVG heatmap of ``matrix`` (rows: true labels, columns: predicted, both in ``labels``
    order), as Comprehend's ``confusion_matrix.json`` holds it for a multi-class version."""
    import numpy as np

    counts = np.asarray(matrix, dtype=np.int64).reshape(len(labels), len(labels))
    n = len(labels)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0)
    side = min(14.0, max(3.6, 0.42 * n + 2.2))
    with svg_figure(alt or confusion_summary(labels, matrix), width=side + 0.6, height=side) as (
        figure,
        axes,
        out,
    ):
        image = axes.imshow(
            share, cmap=SEQUENTIAL, vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest"
        )
        axes.grid(False)
        axes.set_xticks(
            range(n), [short(label) for label in labels], rotation=60, ha="right", rotation_mode="anchor"
        )
        axes.set_yticks(range(n), [short(label) for label in labels])
        axes.set_xlabel("predicted label")
        axes.set_ylabel("true label")
        axes.tick_params(length=0, labelsize=8 if n <= 20 else 6)
        if n <= ANNOTATE_UP_TO:
            for i in range(n):
                for j in range(n):
                    if counts[i, j]:
                        axes.text(
                            j,
                            i,
                            f"{counts[i, j]:,}",
                            ha="center",
                            va="center",
                            fontsize=8 if n <= 15 else 6,
                            color="white" if share[i, j] > 0.55 else "#1d2330",
                        )
        bar = figure.colorbar(image, ax=axes, shrink=0.6, label="share of the true label's documents")
        bar.outline.set_visible(False)
    return out[0]
