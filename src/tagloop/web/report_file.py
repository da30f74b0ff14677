"""The shareable HTML report (``tagloop report C --html FILE``): one file, CSS and SVG inline,
nothing loaded from anywhere (its Content-Security-Policy forbids it), so it can be mailed,
attached to a ticket or opened on a laptop offline and looks the same.

It renders :class:`~tagloop.services.reports.VersionReport` objects: one version, or two side
by side with a comparison on top (``--compare``). Templates: ``templates/report.html`` and
``templates/report.css`` (its own look; it shares nothing with the web UI's pages).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from tagloop import __version__
from tagloop.domain.metrics import METRIC_NAMES
from tagloop.services.reports import Figure, VersionReport, compare_figures, version_figures

_ENVIRONMENT = Environment(
    loader=PackageLoader("tagloop.web", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

CARDS = (
    ("Accuracy", "accuracy"),
    ("F1Score", "macro F1"),
    ("Precision", "macro precision"),
    ("Recall", "macro recall"),
    ("MicroF1Score", "micro F1"),
    ("HammingLoss", "Hamming loss"),
)
LOW_F1 = 0.5
"""A label's F1 below this is marked in the per-label table."""
LOWER_IS_BETTER = {"HammingLoss"}


def html_report(
    first: VersionReport, second: VersionReport | None = None, made: datetime | None = None
) -> str:
    """The whole HTML document of one version's report, or of two compared (``second``)."""
    versions = [first] if second is None else [first, second]
    title = f"{first.classifier} {first.version}" + (f" and {second.version}" if second is not None else "")
    return _ENVIRONMENT.get_template("report.html").render(
        title=f"tagloop report: {title}",
        made=(made or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        tagloop_version=__version__,
        versions=[_version_view(report) for report in versions],
        comparison=_comparison(first, second) if second is not None else None,
    )


WIDE_FROM_LABELS = 10
"""A confusion heatmap of more labels than this takes the whole width (its counts stay readable)."""


def _inline(figures: list[Figure], labels: int = 0) -> list[dict[str, Any]]:
    """Figures with their SVG ready to sit inside HTML (no XML prolog or doctype; matplotlib
    escapes the text it writes, so labels stay text)."""
    return [
        {
            "key": f.key,
            "title": f.title,
            "alt": f.alt,
            "svg": Markup(f.svg[f.svg.find("<svg") :]),
            "wide": f.key == "confusion" and labels > WIDE_FROM_LABELS,
        }
        for f in figures
    ]


def _version_view(report: VersionReport) -> dict[str, Any]:
    summary = report.summary
    documents = summary.get("documents") or {}
    trained = (summary.get("ended_at") or "")[:16].replace("T", " ")
    facts = [
        summary["status"],
        summary["mode"],
        f"{len(summary.get('labels') or [])} labels",
        f"{documents.get('train', 0):,} training and {documents.get('test', 0):,} test documents",
        f"recipe {summary.get('recipe')}",
    ]
    if trained:
        seconds = summary.get("train_seconds")
        facts.append(f"trained {trained} UTC" + (f" in {seconds:.1f} s" if seconds else ""))
    facts.append(
        f"served by endpoint{'s' if len(report.endpoints) > 1 else ''} {', '.join(report.endpoints)}"
        if report.endpoints
        else "served by no endpoint"
    )
    metrics = report.metrics
    confusion = report.confusion
    multi_label = confusion is not None and confusion.get("type") == "multi_label"
    cells = (
        dict(zip(confusion["labels"], confusion["confusion_matrix"], strict=True))
        if confusion is not None and multi_label
        else {}
    )
    columns = ["precision", "recall", "F1", "support", *(("TP", "FP", "FN") if multi_label else ())]
    rows = []
    for label, figures in report.per_label.items():
        row = [
            _cell(figures["precision"]),
            _cell(figures["recall"]),
            _cell(figures["f1"], low=figures["support"] > 0 and figures["f1"] < LOW_F1),
            _count(figures["support"]),
        ]
        if label in cells:
            (_, false_positive), (false_negative, true_positive) = cells[label]
            row += [_count(true_positive), _count(false_positive), _count(false_negative)]
        rows.append({"label": label, "cells": row})
    predictions = report.predictions
    return {
        "classifier": report.classifier,
        "name": report.version,
        "champion": report.champion,
        "facts": " · ".join(facts),
        "notes": report.notes,
        "cards": [{"name": name, "value": f"{metrics[key]:.4f}"} for key, name in CARDS if key in metrics],
        "figures": _inline(version_figures(report), len(summary.get("labels") or [])),
        "per_label_columns": columns,
        "per_label": rows,
        "misclassified": report.misclassified,
        "mistakes": len(predictions.mistakes()) if predictions is not None else 0,
        "scored": predictions is not None,
        "features": list(report.features.items()),
    }


def _cell(value: float, low: bool = False) -> dict[str, Any]:
    return {"value": f"{value:.6f}", "text": f"{value:.4f}", "low": low}


def _count(value: float) -> dict[str, Any]:
    return {"value": str(int(value)), "text": f"{int(value):,}", "low": False}


def _comparison(first: VersionReport, second: VersionReport) -> dict[str, Any]:
    rows = []
    for name in METRIC_NAMES:
        a, b = first.metrics.get(name), second.metrics.get(name)
        if a is None and b is None:
            continue
        change, direction = "-", ""
        if a is not None and b is not None:
            delta = b - a
            change = f"{delta:+.4f}"
            better = delta < 0 if name in LOWER_IS_BETTER else delta > 0
            direction = "" if abs(delta) < 5e-5 else ("up" if better else "down")
        rows.append(
            {
                "name": name,
                "first": "-" if a is None else f"{a:.4f}",
                "second": "-" if b is None else f"{b:.4f}",
                "change": change,
                "direction": direction,
            }
        )

    def tested(report: VersionReport) -> str:
        return f"{(report.summary.get('documents') or {}).get('test', 0):,}"

    return {
        "first": first.version,
        "second": second.version,
        "rows": rows,
        "tested": f"{tested(first)} and {tested(second)} documents",
        "figures": _inline(compare_figures(first, second)),
    }
