"""Per-label bars: precision, recall and F1 of each label (worst F1 first), and two versions'
per-label F1 side by side."""

from __future__ import annotations

from collections.abc import Mapping

from tagloop.plots.style import ACCENT, GOOD, PALETTE, svg_figure
from tagloop.plots.text import short

Figures = Mapping[str, Mapping[str, float]]
"""label -> {"precision", "recall", "f1", "support"}: a version's ``per_label``."""


def _height(labels: int) -> float:
    return min(30.0, max(2.4, 0.32 * labels + 1.2))


def per_label_bars(per_label: Figures, alt: str | None = None) -> str:
    """SVG horizontal bars of each label's precision, recall and F1, worst F1 at the top."""
    import numpy as np

    ordered = sorted(per_label, key=lambda label: (per_label[label]["f1"], label))
    if alt is None:
        alt = f"Precision, recall and F1 of {len(ordered)} labels" + (
            f"; lowest F1: {ordered[0]} {per_label[ordered[0]]['f1']:.2f}, highest: "
            f"{ordered[-1]} {per_label[ordered[-1]]['f1']:.2f}."
            if ordered
            else "."
        )
    with svg_figure(alt, width=6.0, height=_height(len(ordered))) as (_figure, axes, out):
        y = np.arange(len(ordered))
        step = 0.27
        for offset, (key, name, colour) in enumerate(
            (("precision", "precision", PALETTE[1]), ("recall", "recall", PALETTE[3]), ("f1", "F1", ACCENT))
        ):
            axes.barh(
                y + (offset - 1) * step,
                [per_label[label][key] for label in ordered],
                height=step,
                color=colour,
                label=name,
            )
        axes.set_yticks(
            y, [f"{short(label)} ({int(per_label[label].get('support', 0)):,})" for label in ordered]
        )
        axes.invert_yaxis()
        axes.set_xlim(0, 1)
        axes.set_xlabel("score (support in brackets)")
        axes.grid(axis="y", visible=False)
        axes.legend(loc="lower right", ncols=3, bbox_to_anchor=(1.0, 1.0))
    return out[0]


def per_label_comparison(name_a: str, a: Figures, name_b: str, b: Figures, alt: str | None = None) -> str:
    """SVG bars of two versions' F1 per label (labels of either; a label a version lacks
    counts 0), largest change first."""
    import numpy as np

    labels = list(dict.fromkeys([*a, *b]))

    def f1(figures: Figures, label: str) -> float:
        return float(figures[label]["f1"]) if label in figures else 0.0

    ordered = sorted(labels, key=lambda label: (-abs(f1(b, label) - f1(a, label)), label))
    better = sum(f1(b, label) > f1(a, label) for label in labels)
    worse = sum(f1(b, label) < f1(a, label) for label in labels)
    if alt is None:
        alt = (
            f"F1 per label of {name_a} and {name_b}: {name_b} is better on {better} and worse on "
            f"{worse} of {len(labels)} labels."
        )
    with svg_figure(alt, width=6.0, height=_height(len(ordered))) as (_figure, axes, out):
        y = np.arange(len(ordered))
        axes.barh(y - 0.2, [f1(a, label) for label in ordered], height=0.4, color=PALETTE[7], label=name_a)
        axes.barh(y + 0.2, [f1(b, label) for label in ordered], height=0.4, color=GOOD, label=name_b)
        axes.set_yticks(y, [short(label) for label in ordered])
        axes.invert_yaxis()
        axes.set_xlim(0, 1)
        axes.set_xlabel("F1 (largest change at the top)")
        axes.grid(axis="y", visible=False)
        axes.legend(loc="lower right", ncols=2, bbox_to_anchor=(1.0, 1.0))
    return out[0]
