"""What every route finds on the app, typed: the composition root (:class:`Tagloop`), the
server's metrics and the classify coalescer, put on ``app.state`` once by ``create_app``.

Routes taken through FastAPI's stack declare ``tagloop: TagloopDep``; direct routes (which
take only the request) and middleware call :func:`tagloop_of` and friends.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from tagloop.api.coalesce import Coalescer
from tagloop.api.metrics import ServerMetrics
from tagloop.app import Tagloop


def tagloop_of(connection: HTTPConnection) -> Tagloop:
    """The app's :class:`Tagloop` (for a request or any other connection)."""
    tagloop: Tagloop = connection.app.state.tagloop
    return tagloop


def metrics_of(connection: HTTPConnection) -> ServerMetrics:
    metrics: ServerMetrics = connection.app.state.metrics
    return metrics


def coalescer_of(connection: HTTPConnection) -> Coalescer:
    coalescer: Coalescer = connection.app.state.coalescer
    return coalescer


TagloopDep = Annotated[Tagloop, Depends(tagloop_of)]
"""A route parameter that receives the app's :class:`Tagloop`."""
