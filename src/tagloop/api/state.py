"""What every route finds on the app, typed: the composition root (:class:`Tagloop`), the
server's metrics and the classify coalescer, put on ``app.state`` once by ``create_app``.

Routes taken through FastAPI's stack declare ``tagloop: TagloopDep``; direct routes (which
take only the request) and middleware call :func:`tagloop_of` and friends.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from tagloop.api.coalesce import Coalescer
from tagloop.api.metrics import ServerMetrics
from tagloop.app import Tagloop
from tagloop.services.endpoints import Serving


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


async def serving_of(tagloop: Tagloop, name: str) -> Serving:
    """What endpoint ``name`` serves: from this process's memory in the event loop, or, when
    it does not know it (or checked it too long ago), resolved on a worker thread (that may
    read the database and load the model)."""
    serving = tagloop.endpoints.cached(name)
    if serving is None:
        serving = await run_in_threadpool(tagloop.endpoints.serving, name)
    return serving


TagloopDep = Annotated[Tagloop, Depends(tagloop_of)]
"""A route parameter that receives the app's :class:`Tagloop`."""
