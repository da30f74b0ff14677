"""Direct routes are answered ahead of FastAPI's stack, yet pass the app's outer middleware and
its exception handlers like every other route."""

from __future__ import annotations

import logging

import pytest
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from tagloop.api import errors as api_errors
from tagloop.api.direct import DirectApp, DirectRoute
from tagloop.domain.aws_errors import aws_type
from tagloop.errors import InvalidRequest, TagloopError


class Tagged:
    """Middleware that writes which layer a request passed through into a list."""

    def __init__(self, app: ASGIApp, seen: list[str], name: str) -> None:
        self.app, self.seen, self.name = app, seen, name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(f"{self.name} {scope['path']}")
        await self.app(scope, receive, send)


async def allow(request: Request) -> str:
    if request.headers.get("authorization") != "yes":
        raise HTTPException(401, "no key")
    return "caller"


@pytest.fixture
def app_and_seen():
    seen: list[str] = []
    hot = APIRouter(route_class=DirectRoute)

    async def answer(name: str, request: Request, caller: str = Depends(allow)) -> Response:
        body = await request.body()
        if name == "bad":
            raise InvalidRequest("bad name")
        if name == "broken":
            raise RuntimeError("boom")
        route = request.scope["route"].path
        return JSONResponse({"name": name, "caller": caller, "route": route, "bytes": len(body)})

    hot.add_api_route("/hot/{name}", answer, methods=["POST"])
    app = DirectApp()
    app.add_middleware(Tagged, seen=seen, name="stack")

    @app.exception_handler(TagloopError)
    async def tagloop_error(_: Request, exc: TagloopError) -> JSONResponse:
        return JSONResponse({"error": aws_type(exc)}, status_code=api_errors.answer(exc).status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"plain": "yes"}

    app.include_router(hot)
    app.go_direct(lambda inner: Tagged(inner, seen, "outer"), [hot])
    return app, seen


def test_a_direct_route_skips_the_stack_but_not_the_outer_middleware(app_and_seen):
    app, seen = app_and_seen
    client = TestClient(app)
    response = client.post("/hot/printer", content=b"12345", headers={"authorization": "yes"})
    assert response.status_code == 200
    assert response.json() == {"name": "printer", "caller": "caller", "route": "/hot/{name}", "bytes": 5}
    assert client.get("/plain").json() == {"plain": "yes"}
    assert seen == ["outer /hot/printer", "stack /plain"]


def test_errors_go_through_the_apps_exception_handlers(app_and_seen, caplog):
    app, _ = app_and_seen
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/hot/printer").status_code == 401  # the scope check's HTTPException
    assert client.post("/hot/printer").json() == {"error": "no key"}
    bad = client.post("/hot/bad", headers={"authorization": "yes"})
    assert (bad.status_code, bad.json()) == (400, {"error": "InvalidRequestException"})
    with caplog.at_level(logging.ERROR, logger="tagloop.api.direct"):
        broken = client.post("/hot/broken", headers={"authorization": "yes"})
    assert broken.status_code == 500
    assert broken.json()["error"]["type"] == "InternalFailure"
    assert "boom" in caplog.text  # logged with its traceback, not shown to the client
    assert "boom" not in broken.text


def test_other_methods_and_paths_take_the_usual_way(app_and_seen):
    app, seen = app_and_seen
    client = TestClient(app)
    assert client.get("/hot/printer").status_code == 405
    assert client.post("/hot/a/b", headers={"authorization": "yes"}).status_code == 404
    assert seen == ["stack /hot/printer", "stack /hot/a/b"]


def test_the_tagloop_app_answers_classify_invoke_and_the_comprehend_api_directly(tmp_path):
    from tagloop.api.server import create_app
    from tagloop.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data"), start_workers=False)
    paths = [route.path for route, _ in app._direct or []]
    cbor = "/service/Comprehend_20171127/operation/{operation}"
    assert paths == ["/v1/endpoints/{name}/classify", "/v1/endpoints/{name}/invoke", "/", cbor]


def test_an_error_no_handler_takes_goes_to_the_apps_500_handler_and_is_logged(caplog):
    hot = APIRouter(route_class=DirectRoute)

    async def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    hot.add_api_route("/broken", broken, methods=["POST"])
    app = DirectApp()

    @app.exception_handler(500)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"answered": "by the 500 handler"}, status_code=500)

    app.include_router(hot)
    app.go_direct(lambda inner: inner, [hot])
    with caplog.at_level(logging.ERROR, logger="tagloop.api.direct"):
        response = TestClient(app, raise_server_exceptions=False).post("/broken")
    assert (response.status_code, response.json()) == (500, {"answered": "by the 500 handler"})
    assert "boom" in caplog.text and "Traceback" in caplog.text
