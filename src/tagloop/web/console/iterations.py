"""``/console/classifiers/{c}/iterations``: the loop's turns, newest first, each with the
champion's and the challenger's figure on the rule's metric, the decision and its reason; the
promotions made by hand or rolled back are listed beside them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tagloop.domain.names import check_name
from tagloop.errors import NotFound
from tagloop.web.console.common import ViewerSession
from tagloop.web.console.figures import ITERATION_PLOTS, svg_response
from tagloop.web.render import page
from tagloop.web.security import tagloop_of

router = APIRouter(include_in_schema=False)
LISTED = 200


def with_figures(iteration: dict[str, Any]) -> dict[str, Any]:
    """The iteration plus ``metric`` (the rule's) and both sides' figure on it and their gain."""
    metric = (iteration["rule"] or {}).get("metric") or "F1Score"
    champion = (iteration["metrics"]["champion"] or {}).get(metric)
    challenger = (iteration["metrics"]["challenger"] or {}).get(metric)
    gain = challenger - champion if champion is not None and challenger is not None else None
    return iteration | {
        "metric": metric,
        "champion_figure": champion,
        "challenger_figure": challenger,
        "gain": gain,
    }


@router.get("/console/classifiers/{classifier}/iterations")
async def iterations_page(request: Request, classifier: str, session: ViewerSession) -> Response:
    check_name("classifier", classifier)
    tagloop = tagloop_of(request)
    iterations = await run_in_threadpool(tagloop.iterations.list, classifier, LISTED)
    history = await run_in_threadpool(tagloop.loops.history, classifier, 50)
    return await page(
        request,
        "console/iterations.html",
        f"Iterations of {classifier}",
        session=session,
        active="classifiers",
        classifier=classifier,
        iterations=[with_figures(found) for found in iterations],
        promotions=history,
        plots=[(name, plot.alt(classifier)) for name, plot in ITERATION_PLOTS.items()]
        if any(found.get("decision") for found in iterations)
        else [],
    )


@router.get("/console/classifiers/{classifier}/iterations/plots/{name}.svg")
async def iterations_plot(request: Request, classifier: str, name: str, session: ViewerSession) -> Response:
    plot = ITERATION_PLOTS.get(name)
    if plot is None:
        raise NotFound(f"no plot {name[:40]!r} of iterations")
    check_name("classifier", classifier)
    tagloop = tagloop_of(request)
    iterations = await run_in_threadpool(tagloop.iterations.list, classifier, LISTED)
    if not any(found.get("decision") for found in iterations):
        raise NotFound(f"classifier {classifier!r} has no decided iteration to plot yet")
    return svg_response(await run_in_threadpool(plot.draw, classifier, iterations))
