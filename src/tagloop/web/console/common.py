"""What every console page shares: the role guards and the answers that send a person back."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends
from starlette.responses import RedirectResponse

from tagloop.domain.names import check_name
from tagloop.services.users import WebSession
from tagloop.web.security import role, with_page_headers

ViewerSession = Annotated[WebSession, Depends(role("reviewer"))]
"""Read pages: any signed-in person."""
AdminSession = Annotated[WebSession, Depends(role("admin"))]
"""Pages and actions that change what serves, create versions or show job payloads."""


def see_other(location: str) -> RedirectResponse:
    return with_page_headers(RedirectResponse(location, status_code=303))


def classifier_path(name: str) -> str:
    """The classifier's page (its name checked first: a path is built from it)."""
    return f"/console/classifiers/{quote(check_name('classifier', name), safe='')}"
