"""The reliability diagram: do a version's scores mean what they say? Each bin of scores
against the share of right answers in it, beside the diagonal of perfect calibration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagloop.domain.test_predictions import reliability_bins
from tagloop.plots.style import ACCENT, BAD, NEUTRAL, svg_figure


def reliability_diagram(
    scores: Sequence[float] | Any, outcomes: Sequence[bool] | Any, bins: int = 10, alt: str | None = None
) -> str:
    """SVG reliability diagram of (score, outcome) pairs: multi-class, each test document's best
    score and whether it was right (``TestPredictions.calibration_pairs`` gives them)."""
    found, ece = reliability_bins(scores, outcomes, bins)
    filled = [b for b in found if b.count]
    pairs = sum(b.count for b in found)
    if alt is None:
        alt = f"Reliability diagram over {pairs:,} scores in {bins} bins: expected calibration error " + (
            f"{ece:.3f}." if ece is not None else "not defined (no scores)."
        )
    with svg_figure(alt, width=4.6, height=4.2) as (_figure, axes, out):
        axes.plot([0, 1], [0, 1], linestyle="--", color=NEUTRAL, linewidth=1, label="perfectly calibrated")
        width = 1.0 / bins
        axes.bar(
            [b.lower for b in filled],
            [b.accuracy or 0.0 for b in filled],
            width=width,
            align="edge",
            color=ACCENT,
            alpha=0.85,
            edgecolor="white",
            label="share right",
        )
        axes.scatter(
            [b.lower + width / 2 for b in filled],
            [b.mean_score or 0.0 for b in filled],
            marker="_",
            s=(260 / bins) ** 2,
            linewidths=2,
            color=BAD,
            label="mean score in the bin",
            zorder=3,
        )
        for b in filled:
            axes.text(
                b.lower + width / 2, 0.02, f"{b.count:,}", ha="center", va="bottom", fontsize=6, color="white"
            )
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("score")
        axes.set_ylabel("share of right answers")
        axes.set_title("reliability" + (f" (ECE {ece:.3f})" if ece is not None else ""))
        axes.legend(loc="upper left", fontsize=7)
    return out[0]
