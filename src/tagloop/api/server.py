"""The FastAPI application. This slice serves health and identity; the API issue adds /v1."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tagloop import __version__
from tagloop.app import Tagloop
from tagloop.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    tagloop = Tagloop(settings or Settings())
    app = FastAPI(title="tagloop", version=__version__)
    app.state.tagloop = tagloop

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    @app.on_event("shutdown")
    def close() -> None:
        tagloop.close()

    return app
