"""A loop's metric over its iterations: the champion's and the challenger's value on the
frozen test set each time, promoted iterations marked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tagloop.plots.style import ACCENT, GOOD, NEUTRAL, svg_figure


@dataclass(frozen=True)
class IterationPoint:
    """One completed iteration, oldest first in a plot's input."""

    name: str
    champion: float | None
    """The metric of the champion it was compared against (None: there was none)."""
    challenger: float | None
    promoted: bool


def metric_over_iterations(
    points: Sequence[IterationPoint], metric: str = "F1Score", alt: str | None = None
) -> str:
    """SVG line plot of ``metric`` over ``points`` (oldest first); promoted ones ringed."""
    x = list(range(1, len(points) + 1))
    promoted = [p for p in points if p.promoted]
    if alt is None:
        last = next((p.challenger for p in reversed(points) if p.challenger is not None), None)
        alt = f"{metric} over {len(points)} iterations, {len(promoted)} promoted" + (
            f"; last challenger {last:.3f}." if last is not None else "."
        )
    with svg_figure(alt, width=6.0, height=3.2) as (_figure, axes, out):
        axes.plot(
            x,
            [p.champion if p.champion is not None else float("nan") for p in points],
            color=NEUTRAL,
            marker="s",
            markersize=3,
            label="champion",
        )
        axes.plot(
            x,
            [p.challenger if p.challenger is not None else float("nan") for p in points],
            color=ACCENT,
            marker="o",
            markersize=3,
            label="challenger",
        )
        chosen = [
            (i, p.challenger)
            for i, p in zip(x, points, strict=True)
            if p.promoted and p.challenger is not None
        ]
        if chosen:
            axes.scatter(
                [i for i, _ in chosen],
                [v for _, v in chosen],
                s=70,
                facecolors="none",
                edgecolors=GOOD,
                linewidths=1.6,
                label="promoted",
                zorder=3,
            )
        axes.set_xticks(
            x,
            [p.name for p in points],
            rotation=45 if len(points) > 6 else 0,
            ha="right" if len(points) > 6 else "center",
        )
        axes.set_xlabel("iteration")
        axes.set_ylabel(metric)
        axes.legend(loc="lower right")
    return out[0]
