"""Plots as image URLs: every plot a console page shows is an ``<img>`` of a ``.svg`` route,
so the same URL can be embedded elsewhere (a wiki, a ticket) by anyone signed in.

A version's plots come from :data:`VERSION_PLOTS`: name → (alt text, drawing function of the
version's figures). The version report's plots (confusion heatmap, reliability diagram,
score histogram, per-label bars; issue 16, helper ``report``) plug in here at merge; until
then a version page shows the stored figures as tables, and :data:`VERSION_PLOTS` holds the
plots that need nothing more than the stored summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from tagloop.plots.labels import label_counts
from tagloop.web.security import PAGE_HEADERS

SVG_HEADERS = PAGE_HEADERS | {
    # opened on its own, an SVG is a document: no script, its own inline <style> only
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}


def svg_response(svg: str) -> Response:
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)


@dataclass(frozen=True)
class VersionPlot:
    name: str
    alt: Callable[[dict[str, Any]], str]
    """The alt text, from the version's summary (``Catalog.version``)."""
    draw: Callable[[dict[str, Any]], str]
    """The SVG, from the version's summary."""
    shown: Callable[[dict[str, Any]], bool] = lambda version: True


def _label_alt(version: dict[str, Any]) -> str:
    return f"Training documents per label, {version['classifier']} {version['version']}"


VERSION_PLOTS: dict[str, VersionPlot] = {
    plot.name: plot
    for plot in (
        VersionPlot(
            "labels",
            _label_alt,
            lambda version: label_counts(version["label_counts"] or {}, _label_alt(version)),
            lambda version: bool(version["label_counts"]),
        ),
    )
}


@dataclass(frozen=True)
class IterationPlot:
    alt: Callable[[str], str]
    """The alt text, from the classifier's name."""
    draw: Callable[[str, list[dict[str, Any]]], str]
    """The SVG, from the classifier's name and its iterations (newest first)."""


ITERATION_PLOTS: dict[str, IterationPlot] = {}
"""The metric over iterations with promoted points (helper ``report``'s plot) plugs in here."""
