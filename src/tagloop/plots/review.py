"""Plots of human review: the queue's size over time, answers per reviewer and day, and each
reviewer's agreement with the final labels. Pure drawing from figures the services computed
(``services/review_stats.py``, ``ReviewService.agreement``); each returns an SVG document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from tagloop.plots.style import ACCENT, BAD, GOOD, NEUTRAL, PALETTE, svg_figure

MAX_REVIEWERS = 7
"""Reviewers drawn by name in the answers plot; the rest are summed as "others"."""
MAX_BARS = 25
"""Reviewers drawn in the agreement plot (the ones with the most answers)."""


def _day_ticks(days: Sequence[date]) -> tuple[list[int], list[str]]:
    """At most about ten day labels (``12-01``), always the last day."""
    step = max(1, -(-len(days) // 10))
    positions = list(range(len(days) - 1, -1, -step))[::-1]
    return positions, [days[index].strftime("%m-%d") for index in positions]


def _whole_numbers() -> Any:
    """Ticks on whole numbers only (counts of tasks and answers)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def queue_size(days: Sequence[date], waiting: Sequence[int]) -> str:
    """A line of the tasks waiting at the end of each day (the last point: now)."""
    if len(days) != len(waiting) or not days:
        raise ValueError("one count per day, and at least one day")
    alt = (
        f"Review queue size over {len(days)} days, {days[0].isoformat()} to {days[-1].isoformat()}: "
        f"{waiting[-1]} tasks waiting now, at most {max(waiting)}"
    )
    with svg_figure(alt, 6.4, 2.8) as (_, axes, out):
        positions = list(range(len(days)))
        axes.fill_between(positions, list(waiting), step="mid", color=ACCENT, alpha=0.15, linewidth=0)
        axes.step(positions, list(waiting), where="mid", color=ACCENT, linewidth=1.8)
        axes.plot([positions[-1]], [waiting[-1]], "o", color=ACCENT, markersize=4)
        axes.annotate(
            str(waiting[-1]),
            (positions[-1], waiting[-1]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
        )
        ticks, labels = _day_ticks(days)
        axes.set_xticks(ticks, labels)
        axes.set_ylim(0, max(1, max(waiting)) * 1.2)
        axes.yaxis.set_major_locator(_whole_numbers())
        axes.set_ylabel("tasks waiting")
        axes.set_xlabel("day (UTC)")
        axes.set_title("Review queue at the end of each day")
    return out[0]


def answers_per_day(days: Sequence[date], per_reviewer: Mapping[str, Sequence[int]]) -> str:
    """Stacked bars: each day's answers by reviewer (the ``MAX_REVIEWERS`` with the most answers
    by name, the rest as "others")."""
    if not days or any(len(counts) != len(days) for counts in per_reviewer.values()):
        raise ValueError("one count per day for every reviewer, and at least one day")
    ranked = sorted(per_reviewer.items(), key=lambda item: (-sum(item[1]), item[0]))
    shown = ranked[:MAX_REVIEWERS]
    rest = ranked[MAX_REVIEWERS:]
    series = [(name, list(counts)) for name, counts in shown]
    if rest:
        series.append(
            (f"{len(rest)} others", [sum(counts[i] for _, counts in rest) for i in range(len(days))])
        )
    total = sum(sum(counts) for _, counts in series)
    alt = (
        f"Answers per reviewer and day over {len(days)} days: "
        f"{total} answers by {len(per_reviewer)} reviewers"
        + (": " + ", ".join(f"{name} {sum(counts)}" for name, counts in series) if series else "")
    )
    with svg_figure(alt, 6.4, 3.0) as (_, axes, out):
        positions = list(range(len(days)))
        bottom = [0] * len(days)
        for index, (name, counts) in enumerate(series):
            colour = NEUTRAL if rest and index == len(series) - 1 else PALETTE[index % (len(PALETTE) - 1)]
            axes.bar(
                positions, counts, bottom=bottom, label=f"{name} ({sum(counts)})", color=colour, width=0.8
            )
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ticks, labels = _day_ticks(days)
        axes.set_xticks(ticks, labels)
        axes.set_ylim(0, max(1, max(bottom)) * 1.15)
        axes.yaxis.set_major_locator(_whole_numbers())
        axes.set_ylabel("answers")
        axes.set_xlabel("day (UTC)")
        axes.set_title("Answers per reviewer and day")
        axes.grid(axis="x", visible=False)
        if series:
            axes.legend(loc="upper left", fontsize=8, ncols=min(4, len(series)))
    return out[0]


def agreement_by_reviewer(tallies: Mapping[str, Mapping[str, float | int | None]]) -> str:
    """Horizontal bars: each reviewer's share of answers agreeing with the final labels
    (``ReviewService.agreement``'s ``reviewers``: ``answers``, ``agreed``, ``share``), green
    from 0.8 up, red below 0.5; the reviewers with the most answers first."""
    ranked = sorted(tallies.items(), key=lambda item: (-int(item[1].get("answers") or 0), item[0]))[:MAX_BARS]
    if not ranked:
        raise ValueError("no reviewer to draw")
    shares = [float(tally.get("share") or 0.0) for _, tally in ranked]
    alt = "Agreement with the final labels per reviewer: " + ", ".join(
        f"{name} {share:.2f} of {int(tally.get('answers') or 0)} answers"
        for (name, tally), share in zip(ranked, shares, strict=True)
    )
    height = 1.0 + 0.32 * len(ranked)
    with svg_figure(alt, 6.4, height) as (_, axes, out):
        positions = list(range(len(ranked)))[::-1]
        colours = [GOOD if share >= 0.8 else BAD if share < 0.5 else ACCENT for share in shares]
        axes.barh(positions, shares, color=colours, height=0.6)
        axes.set_yticks(positions, [name for name, _ in ranked])
        for position, share, (_, tally) in zip(positions, shares, ranked, strict=True):
            axes.annotate(
                f"{share:.2f} ({int(tally.get('agreed') or 0)}/{int(tally.get('answers') or 0)})",
                (share, position),
                textcoords="offset points",
                xytext=(4, 0),
                va="center",
                fontsize=8,
            )
        axes.set_xlim(0, 1.25)
        axes.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        axes.set_xlabel("share of answers agreeing with the final labels")
        axes.set_title("Agreement per reviewer")
        axes.grid(axis="y", visible=False)
    return out[0]


def nothing_to_draw(message: str) -> str:
    """A small figure saying why there is no plot (an image URL must still show something)."""
    with svg_figure(message, 6.4, 1.2) as (_, axes, out):
        axes.set_axis_off()
        axes.text(0.5, 0.5, message, ha="center", va="center", color=NEUTRAL, fontsize=10)
    return out[0]
