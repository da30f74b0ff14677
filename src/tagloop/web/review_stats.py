"""Review statistics for moderators and admins (``/review/stats``): the review queue's size
at the end of each day, answers per reviewer and day, and each reviewer's agreement with the
final labels, for one classifier or all; each plot also an image URL (``/review/stats/*.svg``).

Figures come from ``services/review_stats.py`` (activity) and ``ReviewService.agreement``
(the same figures as ``/moderate/agreement``); the plots from ``plots/review.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tagloop.app import Tagloop
from tagloop.plots import review as plots
from tagloop.services.review_stats import WINDOWS, ReviewActivity
from tagloop.services.users import WebSession
from tagloop.web.render import page
from tagloop.web.security import role, tagloop_of
from tagloop.web.svg_images import svg_response

router = APIRouter(include_in_schema=False)
ModeratorSession = Annotated[WebSession, Depends(role("moderator"))]
DEFAULT_DAYS = 14


@dataclass(frozen=True)
class Choice:
    """What the page shows: one classifier (None: all) over ``days`` days."""

    classifier: str | None
    days: int
    names: list[str]

    @property
    def query(self) -> str:
        """The query string naming this choice (for the image URLs and links)."""
        fields = {"days": str(self.days)} | ({"classifier": self.classifier} if self.classifier else {})
        return urlencode(fields)


def choose(tagloop: Tagloop, classifier: str | None, days: str | None) -> Choice:
    """The classifier asked for if it exists (else all), and the window asked for if the page
    offers it (else the default): a link edited by hand shows the page, not an error."""
    names = [row["name"] for row in tagloop.catalog.classifiers()]
    window = int(days) if days is not None and days.isdigit() and len(days) < 5 else DEFAULT_DAYS
    return Choice(
        classifier if classifier in names else None, window if window in WINDOWS else DEFAULT_DAYS, names
    )


def _activity(tagloop: Tagloop, choice: Choice) -> ReviewActivity:
    return tagloop.review_stats.activity(choice.classifier, choice.days)


def _agreement(tagloop: Tagloop, choice: Choice) -> dict[str, Any] | None:
    return tagloop.review.agreement(choice.classifier) if choice.classifier is not None else None


@router.get("/review/stats")
async def stats_page(
    request: Request,
    session: ModeratorSession,
    classifier: str | None = None,
    days: str | None = None,
) -> Response:
    tagloop = tagloop_of(request)

    def gather() -> dict[str, Any]:
        choice = choose(tagloop, classifier, days)
        return {
            "choice": choice,
            "windows": WINDOWS,
            "activity": _activity(tagloop, choice),
            "figures": _agreement(tagloop, choice),
            "queues": tagloop.review.stats(classifier=choice.classifier),
        }

    context = await run_in_threadpool(gather)
    return await page(
        request,
        "c2_review_stats.html",
        "Review statistics",
        session=session,
        active="review-stats",
        **context,
    )


@router.get("/review/stats/queue.svg")
async def queue_plot(
    request: Request, session: ModeratorSession, classifier: str | None = None, days: str | None = None
) -> Response:
    tagloop = tagloop_of(request)

    def draw() -> str:
        activity = _activity(tagloop, choose(tagloop, classifier, days))
        if not any(activity.waiting):
            return plots.nothing_to_draw(f"No task waited for review in the last {len(activity.days)} days")
        return plots.queue_size(activity.days, activity.waiting)

    return svg_response(await run_in_threadpool(draw))


@router.get("/review/stats/answers.svg")
async def answers_plot(
    request: Request, session: ModeratorSession, classifier: str | None = None, days: str | None = None
) -> Response:
    tagloop = tagloop_of(request)

    def draw() -> str:
        activity = _activity(tagloop, choose(tagloop, classifier, days))
        if not activity.answers:
            return plots.nothing_to_draw(f"No answers in the last {len(activity.days)} days")
        return plots.answers_per_day(activity.days, activity.answers)

    return svg_response(await run_in_threadpool(draw))


@router.get("/review/stats/agreement.svg")
async def agreement_plot(
    request: Request, session: ModeratorSession, classifier: str | None = None
) -> Response:
    tagloop = tagloop_of(request)

    def draw() -> str:
        figures = _agreement(tagloop, choose(tagloop, classifier, None))
        if figures is None:
            return plots.nothing_to_draw("Choose a classifier to see its reviewers' agreement")
        if not figures["reviewers"]:
            return plots.nothing_to_draw("No completed task with reviewers' answers yet")
        return plots.agreement_by_reviewer(figures["reviewers"])

    return svg_response(await run_in_threadpool(draw))
