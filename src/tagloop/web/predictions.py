"""Logged predictions for moderators and admins: ``/predictions`` lists the recent ones, newest
first, filtered by endpoint, best label, best score range, routed to review or not, end-user
feedback or not (``PredictionHistory.page``, a page at a time by cursor); ``/predictions/{id}``
shows one with every score, and its review trail: each task made for it (routed, or the end
user's feedback), the reviewers' answers, how they were consolidated and what was decided.

Filters arrive as query text: a bad value is named on the page (400), never a server error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tagloop.app import Tagloop
from tagloop.domain.routing import Reason
from tagloop.errors import InvalidRequest
from tagloop.services.users import WebSession
from tagloop.web.render import page
from tagloop.web.security import role, tagloop_of

router = APIRouter(include_in_schema=False)
ModeratorSession = Annotated[WebSession, Depends(role("moderator"))]
PAGE_SIZE = 50
MAX_FIELD = 200  # characters of a filter kept
CHOICES = {"": None, "yes": True, "no": False}
REASONS = {
    Reason.LOW_CONFIDENCE.value: "low confidence",
    Reason.MARGIN.value: "small margin",
    Reason.LABEL.value: "watched label",
    Reason.AUDIT.value: "audit sample",
    Reason.FEEDBACK.value: "end-user feedback",
    Reason.ACTIVE_LEARNING.value: "active learning",
}


@dataclass
class Filters:
    """The list's filters as sent (to show them back) and as read (to query)."""

    endpoint: str = ""
    label: str = ""
    min_score: str = ""
    max_score: str = ""
    routed: str = ""
    feedback: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, params: dict[str, str]) -> Filters:
        sent = {
            name: params.get(name, "").strip()[:MAX_FIELD]
            for name in cls.__dataclass_fields__
            if name != "errors"
        }
        found = cls(
            sent["endpoint"],
            sent["label"],
            sent["min_score"],
            sent["max_score"],
            sent["routed"],
            sent["feedback"],
        )
        for name in ("min_score", "max_score"):
            text = sent[name]
            if text:
                try:
                    value = float(text)
                except ValueError:
                    value = math.nan
                if not 0.0 <= value <= 1.0:
                    found.errors[name] = (
                        f"{name.replace('_', ' ')}: a score from 0 to 1, like 0.5, not {text[:40]!r}"
                    )
        for name in ("routed", "feedback"):
            if sent[name] not in CHOICES:
                found.errors[name] = f"{name}: yes, no or empty, not {sent[name][:40]!r}"
        if (
            not found.errors
            and found.min_score
            and found.max_score
            and float(found.min_score) > float(found.max_score)
        ):
            found.errors["max_score"] = "max score: must not be below the min score"
        return found

    @property
    def any(self) -> bool:
        return any((self.endpoint, self.label, self.min_score, self.max_score, self.routed, self.feedback))

    def query(self, **more: str) -> str:
        """The query string of these filters (and ``more``), empty fields left out."""
        fields = {
            "endpoint": self.endpoint,
            "label": self.label,
            "min_score": self.min_score,
            "max_score": self.max_score,
            "routed": self.routed,
            "feedback": self.feedback,
        } | more
        return urlencode({name: value for name, value in fields.items() if value})

    def arguments(self) -> dict[str, Any]:
        """``PredictionHistory.page``'s keyword arguments."""
        return {
            "endpoint": self.endpoint or None,
            "label": self.label or None,
            "min_score": float(self.min_score) if self.min_score else None,
            "max_score": float(self.max_score) if self.max_score else None,
            "routed": CHOICES[self.routed],
            "feedback": CHOICES[self.feedback],
        }


def _listing(tagloop: Tagloop, filters: Filters, cursor: str | None) -> dict[str, Any]:
    endpoints = [summary["name"] for summary in tagloop.endpoints.list()]
    items: list[dict[str, Any]] = []
    following = None
    if not filters.errors:
        try:
            items, following = tagloop.prediction_history.page(
                limit=PAGE_SIZE, cursor=cursor or None, **filters.arguments()
            )
        except InvalidRequest as exc:  # a cursor not ours
            filters.errors["cursor"] = exc.message
    reasons = tagloop.prediction_history.review_reasons([item["id"] for item in items])
    for item in items:
        found = reasons.get(item["id"], [])
        item["routed"] = sorted(
            {REASONS.get(reason, reason) for reason in found if reason != Reason.FEEDBACK.value}
        )
        item["feedback"] = Reason.FEEDBACK.value in found
    return {
        "items": items,
        "next_page": filters.query(cursor=following) if following else None,
        "endpoints": endpoints,
        "filters": filters,
        "logging": tagloop.settings.log_predictions,
        "keeps_text": tagloop.settings.log_prediction_text,
    }


@router.get("/predictions")
async def predictions_page(request: Request, session: ModeratorSession) -> Response:
    params = {name: value for name, value in request.query_params.items() if isinstance(value, str)}
    filters = Filters.of(params)
    cursor = params.get("cursor", "")[:1_000]
    context = await run_in_threadpool(_listing, tagloop_of(request), filters, cursor)
    status = 400 if filters.errors else 200
    return await page(
        request,
        "c2_predictions.html",
        "Predictions",
        status=status,
        session=session,
        active="predictions",
        **context,
    )


def _trail(tagloop: Tagloop, prediction_id: str) -> dict[str, Any]:
    prediction = tagloop.prediction_history.get(prediction_id)
    tasks = tagloop.review.for_prediction(prediction["id"])
    return {"prediction": prediction, "tasks": tasks, "reasons": REASONS}


@router.get("/predictions/{prediction_id}")
async def prediction_page(request: Request, prediction_id: str, session: ModeratorSession) -> Response:
    context = await run_in_threadpool(_trail, tagloop_of(request), prediction_id)
    return await page(
        request, "c2_prediction.html", "Prediction", session=session, active="predictions", **context
    )
