"""The keyboard-first review page (``/review``) and the moderator page (``/moderate``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tagloop.services.users import WebSession
from tagloop.web.render import page
from tagloop.web.security import role

router = APIRouter(include_in_schema=False)
ReviewerSession = Annotated[WebSession, Depends(role("reviewer"))]
ModeratorSession = Annotated[WebSession, Depends(role("moderator"))]


@router.get("/review")
async def review_page(request: Request, session: ReviewerSession) -> Response:
    return await page(request, "review.html", "Review", session=session, active="review")


@router.get("/moderate")
async def moderate_page(request: Request, session: ModeratorSession) -> Response:
    return await page(request, "review.html", "Moderate", session=session, active="moderate")
