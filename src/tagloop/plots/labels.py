"""How many training documents each label has: the first thing to look at when a label scores
badly (few examples), drawn as horizontal bars so long label names stay readable."""

from __future__ import annotations

from collections.abc import Mapping

from tagloop.plots.style import ACCENT, svg_figure

MAX_BARS = 40
"""Labels drawn; the rest are summed into one bar ("N other labels") so the plot stays legible."""


def label_counts(counts: Mapping[str, int], title: str) -> str:
    """An SVG of ``counts`` (label → documents), largest first, each bar annotated with its count."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if len(ranked) > MAX_BARS:
        rest = ranked[MAX_BARS - 1 :]
        ranked = [*ranked[: MAX_BARS - 1], (f"{len(rest)} other labels", sum(count for _, count in rest))]
    names = [name for name, _ in ranked]
    values = [count for _, count in ranked]
    total = sum(values)
    alt = f"{title}: {len(counts)} labels, {total:,} documents" + (
        "; " + ", ".join(f"{name} {count:,}" for name, count in ranked[:10]) if ranked else ""
    )
    height = 1.0 + 0.28 * max(1, len(ranked))
    with svg_figure(alt, width=6.4, height=height) as (_, axes, out):
        positions = list(range(len(ranked)))
        bars = axes.barh(positions, values, color=ACCENT, height=0.7)
        axes.set_yticks(positions, [name if len(name) <= 28 else name[:27] + "…" for name in names])
        axes.invert_yaxis()
        axes.set_xlabel("documents")
        axes.set_title(title, loc="left")
        axes.grid(axis="y", visible=False)
        axes.bar_label(bars, labels=[f"{value:,}" for value in values], padding=3, fontsize=8)
        axes.set_xlim(0, max(values, default=1) * 1.15 or 1)
    return out[0]
