"""Plots as image URLs: every plot a console page shows is an ``<img>`` of a ``.svg`` route,
so the same URL can be embedded elsewhere (a wiki, a ticket) by anyone signed in.

A version's plots: :data:`VERSION_PLOTS` (name → alt text and drawing function of the
version's stored summary) and the version report's (:data:`REPORT_PLOTS`: per-label bars,
confusion heatmap, reliability diagram, score histogram, the metric over iterations; drawn by
``services.reports.version_plots`` from the scored test documents). The iterations page's plot
is :data:`ITERATION_PLOTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from tagloop.plots.iterations import IterationPoint
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


REPORT_PLOTS = ("per_label", "confusion", "reliability", "scores", "iterations")
"""The keys of ``services.reports.version_plots``."""


def _iteration_alt(classifier: str) -> str:
    return (
        f"The promotion metric of champion and challenger over the iterations of {classifier}, "
        "promotions marked"
    )


def _iteration_points(iterations: list[dict[str, Any]]) -> tuple[list[IterationPoint], str]:
    """The decided iterations, oldest first, on the newest one's rule metric."""
    decided = [found for found in reversed(iterations) if found.get("decision")]
    metric = (
        next(
            ((found.get("rule") or {}).get("metric") for found in reversed(decided) if found.get("rule")),
            None,
        )
        or "F1Score"
    )
    points = [
        IterationPoint(
            found["iteration"],
            ((found["metrics"] or {}).get("champion") or {}).get(metric),
            ((found["metrics"] or {}).get("challenger") or {}).get(metric),
            found["decision"] == "promoted",
        )
        for found in decided
    ]
    return points, metric


def _draw_iterations(classifier: str, iterations: list[dict[str, Any]]) -> str:
    from tagloop.plots.iterations import metric_over_iterations

    points, metric = _iteration_points(iterations)
    return metric_over_iterations(points, metric, _iteration_alt(classifier))


ITERATION_PLOTS: dict[str, IterationPlot] = {"metric": IterationPlot(_iteration_alt, _draw_iterations)}
