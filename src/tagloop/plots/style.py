"""One look for every plot, and the one way a figure becomes an SVG document.

Every plot function draws inside :func:`svg_figure` and returns its string: text kept as text
(searchable, scalable, styled by the page's font), no timestamps or random ids (the same
figures give the same bytes, so reports diff and cache well), and an accessible ``<title>``
holding the alt text.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# colours: one accent, a neutral, and a good/bad pair readable by colour-blind people
ACCENT = "#2f6fb0"
NEUTRAL = "#8a8f98"
GOOD = "#1b7f5a"
BAD = "#c2452d"
PALETTE = (ACCENT, "#e08a1e", GOOD, "#7b4fa3", BAD, "#3aa6b9", "#b5873a", NEUTRAL)
SEQUENTIAL = "Blues"  # heatmaps (confusion matrices)

STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.edgecolor": "#c8ccd2",
    "axes.linewidth": 0.8,
    "axes.grid": True,
    "grid.color": "#e6e8eb",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": None,  # set from PALETTE when matplotlib is loaded
    "xtick.color": "#4a4f57",
    "ytick.color": "#4a4f57",
    "legend.frameon": False,
    "svg.fonttype": "none",  # text stays text
    "svg.hashsalt": "tagloop",  # stable element ids
    "figure.dpi": 100,
}

_LOCK = threading.Lock()  # pyplot-free, but rcParams contexts are process-global


def _style() -> dict[str, Any]:
    from cycler import cycler

    return {**STYLE, "axes.prop_cycle": cycler(color=list(PALETTE))}


@contextmanager
def svg_figure(alt: str, width: float = 6.4, height: float = 4.0) -> Iterator[tuple[Figure, Axes, list[str]]]:
    """Draw on ``(figure, axes)``; the SVG text is appended to the yielded list on exit.

    ``alt`` becomes the document's ``<title>`` (what a screen reader says, and the page's
    ``alt`` text). Width and height are in inches at 100 dpi.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    out: list[str] = []
    with _LOCK, matplotlib.rc_context(_style()):  # type: ignore[arg-type]
        figure = Figure(figsize=(width, height), layout="constrained")
        axes = figure.add_subplot()
        yield figure, axes, out
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    out.append(_with_title(buffer.getvalue(), alt))


def _with_title(svg: str, alt: str) -> str:
    """Put ``alt`` as the first child of the root ``<svg>`` (role img, labelled by it)."""
    start = svg.find("<svg")
    end = svg.find(">", start)
    if start < 0 or end < 0:
        raise ValueError("matplotlib did not produce an SVG document")
    root = svg[start:end]
    if "role=" not in root:
        root += ' role="img"'
    title = f"<title>{escape(alt)}</title>"
    return svg[start : start + len("<svg")] + root[len("<svg") :] + ">" + title + svg[end + 1 :]
