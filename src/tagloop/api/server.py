"""The FastAPI application. This slice serves health and identity; the API issue adds /v1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tagloop import __version__
from tagloop.app import Tagloop
from tagloop.settings import Settings


def create_app(settings: Settings | None = None, start_workers: bool = True) -> FastAPI:
    """The ASGI app; with ``start_workers`` it also runs queued jobs in background threads."""
    tagloop = Tagloop(settings or Settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            tagloop.start_workers()
        yield
        tagloop.close()

    app = FastAPI(title="tagloop", version=__version__, lifespan=lifespan)
    app.state.tagloop = tagloop

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    return app
