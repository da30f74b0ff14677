"""``/console/classifiers/{c}/versions/{v}``: one version's metric cards, per-label table
(sortable by any column, on the server: works without script), confusion matrix as a heatmap
whose cells open their test documents, the misclassified test documents, the strongest
features per label (the model's top terms with their weights) and the version's plots;
``.../cell``: the test documents of one cell; ``.../plots/{name}.svg``: a plot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tagloop.domain.metrics import PER_LABEL_NAMES
from tagloop.domain.names import check_name
from tagloop.errors import InvalidRequest, NotFound, ResourceUnavailable
from tagloop.services.overview import TestDocument
from tagloop.services.reports import FEATURES, VersionReport, version_plots
from tagloop.web.console.common import ViewerSession
from tagloop.web.console.figures import REPORT_PLOTS, VERSION_PLOTS, svg_response
from tagloop.web.render import page
from tagloop.web.security import tagloop_of

router = APIRouter(include_in_schema=False)
CARDS = (
    ("Accuracy", "Accuracy"),
    ("F1Score", "F1 (macro)"),
    ("Precision", "Precision (macro)"),
    ("Recall", "Recall (macro)"),
    ("MicroF1Score", "F1 (micro)"),
    ("HammingLoss", "Hamming loss"),
)
SORTS = ("label", *PER_LABEL_NAMES)
SHADES = 6  # heatmap shades h0..h5 (CSS classes: the page's policy allows no inline style)
LISTED = 200  # test documents listed on a page
CELLS = ("true_negative", "false_positive", "false_negative", "true_positive")


@dataclass(frozen=True)
class Cell:
    count: int
    shade: int
    diagonal: bool
    actual: str
    predicted: str


def heatmap(confusion: dict[str, Any] | None) -> list[tuple[str, list[Cell]]]:
    """A multi-class confusion matrix as rows of shaded cells; the shade is the cell's share of
    its row (what share of the label's documents went there)."""
    if not confusion or confusion.get("type") != "multi_class":
        return []
    labels, matrix = confusion["labels"], confusion["confusion_matrix"]
    rows = []
    for actual, counts in zip(labels, matrix, strict=True):
        total = sum(counts) or 1
        rows.append(
            (
                actual,
                [
                    Cell(
                        count,
                        min(SHADES - 1, round(count / total * (SHADES - 1) + 0.49)) if count else 0,
                        actual == predicted,
                        actual,
                        predicted,
                    )
                    for predicted, count in zip(labels, counts, strict=True)
                ],
            )
        )
    return rows


def strongest_features(
    report: VersionReport,
) -> tuple[list[tuple[str, list[tuple[str, float]]]], str | None]:
    """The report's strongest features per label, in the version's label order, and why there
    are none when there are none (the model file is gone, the recipe does not list them): the
    page says so rather than failing."""
    order = {label: n for n, label in enumerate(report.summary.get("labels") or [])}
    features = sorted(report.features.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    if features:
        return features, None
    why = [
        note.removeprefix("no strongest features: ") for note in report.notes if "strongest features" in note
    ]
    return [], (why[0] if why else "the model lists no feature for any label")


def per_label_rows(version: dict[str, Any], sort: str, descending: bool) -> list[tuple[str, dict[str, Any]]]:
    rows = list((version["per_label"] or {}).items())
    if sort == "label":
        rows.sort(key=lambda row: row[0], reverse=descending)
    else:
        rows.sort(key=lambda row: (row[1].get(sort) or 0, row[0]), reverse=descending)
    return rows


async def _version(request: Request, classifier: str, version: str) -> dict[str, Any]:
    check_name("classifier", classifier)
    check_name("version", version)
    found: dict[str, Any] = await run_in_threadpool(tagloop_of(request).catalog.version, classifier, version)
    return found


@router.get("/console/classifiers/{classifier}/versions/{version}")
async def version_page(
    request: Request,
    classifier: str,
    version: str,
    session: ViewerSession,
    sort: str = "f1",
    order: str = "asc",
) -> Response:
    found = await _version(request, classifier, version)
    sort = sort if sort in SORTS else "f1"
    descending = order == "desc"
    misclassified: list[TestDocument] = []
    missing: str | None = None  # why the test documents cannot be listed
    if found["status"] == "TRAINED" and found["confusion_matrix"]:
        try:
            documents = await run_in_threadpool(
                tagloop_of(request).overview.test_documents, classifier, version
            )
        except ResourceUnavailable as exc:  # model and stored test predictions gone
            missing = exc.message
        else:
            misclassified = sorted(
                (doc for doc in documents if set(doc.actual) != set(doc.predicted)),
                key=lambda doc: -doc.score,
            )
    plots = [(plot.name, plot.alt(found)) for plot in VERSION_PLOTS.values() if plot.shown(found)]
    features: list[tuple[str, list[tuple[str, float]]]] = []
    features_note: str | None = None
    if found["status"] == "TRAINED":  # the report's plots: listed now, each drawn by its URL
        report = await run_in_threadpool(tagloop_of(request).reports.version_report, classifier, version)
        plots += [(spec.key, spec.alt) for spec in version_plots(report)]
        features, features_note = strongest_features(report)
    return await page(
        request,
        "console/version.html",
        f"{classifier} {version}",
        session=session,
        active="classifiers",
        version=found,
        cards=[(label, found["metrics"].get(key)) for key, label in CARDS if key in (found["metrics"] or {})],
        sort=sort,
        descending=descending,
        per_label=per_label_rows(found, sort, descending),
        heatmap=heatmap(found["confusion_matrix"]),
        misclassified=misclassified[:LISTED],
        misclassified_count=len(misclassified),
        misclassified_missing=missing,
        plots=plots,
        features=features,
        features_note=features_note,
        features_listed=FEATURES,
    )


def in_cell(doc: TestDocument, actual: str, predicted: str) -> bool:
    """A multi-class cell: the gold label ``actual``, the model's ``predicted`` (empty: none)."""
    return doc.actual[:1] == (actual,) and (doc.predicted[:1] or ("",)) == (predicted,)


def in_label_cell(doc: TestDocument, label: str, cell: str) -> bool:
    """A multi-label cell: ``label``'s true/false positives/negatives."""
    gold, decided = label in doc.actual, label in doc.predicted
    return {
        "true_positive": gold and decided,
        "false_positive": decided and not gold,
        "false_negative": gold and not decided,
        "true_negative": not gold and not decided,
    }[cell]


@router.get("/console/classifiers/{classifier}/versions/{version}/cell")
async def cell_page(
    request: Request,
    classifier: str,
    version: str,
    session: ViewerSession,
    actual: str = "",
    predicted: str = "",
    label: str = "",
    cell: str = "",
) -> Response:
    """The test documents of one confusion-matrix cell: ``actual`` + ``predicted`` (multi-class)
    or ``label`` + ``cell`` (multi-label)."""
    found = await _version(request, classifier, version)
    labels = set(found["labels"])
    if label or cell:
        if label not in labels or cell not in CELLS:
            raise InvalidRequest(f"cell: give a label of this version and one of {', '.join(CELLS)}")
        heading = f"{label}: {cell.replace('_', ' ')}s"
    else:
        if actual not in labels or predicted not in labels:
            raise InvalidRequest("cell: give an actual and a predicted label of this version")
        heading = f"Actual {actual}, predicted {predicted}"
    documents = await run_in_threadpool(tagloop_of(request).overview.test_documents, classifier, version)
    chosen = [
        doc
        for doc in documents
        if (in_label_cell(doc, label, cell) if label else in_cell(doc, actual, predicted))
    ]
    return await page(
        request,
        "console/cell.html",
        heading,
        session=session,
        active="classifiers",
        version=found,
        heading=heading,
        documents=chosen[:LISTED],
        count=len(chosen),
        listed=LISTED,
    )


@router.get("/console/classifiers/{classifier}/versions/{version}/plots/{name}.svg")
async def version_plot(
    request: Request, classifier: str, version: str, name: str, session: ViewerSession
) -> Response:
    found = await _version(request, classifier, version)
    plot = VERSION_PLOTS.get(name)
    if plot is not None:
        if not plot.shown(found):
            raise NotFound(f"version {version} of {classifier!r} has no figures for the plot {name!r}")
        return svg_response(await run_in_threadpool(plot.draw, found))
    if name in REPORT_PLOTS and found["status"] == "TRAINED":
        report = await run_in_threadpool(tagloop_of(request).reports.version_report, classifier, version)
        for spec in version_plots(report):
            if spec.key == name:
                return svg_response(await run_in_threadpool(spec.draw))
    known = ", ".join([*VERSION_PLOTS, *REPORT_PLOTS])
    raise NotFound(f"version {version} of {classifier!r} has no plot {name[:40]!r} (plots: {known})")
