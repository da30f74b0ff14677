"""Hot paths: routes documented by FastAPI from the endpoint's signature, but answered
without its router, middleware stack, per-request dependency resolution and response
validation.

A ``DirectRoute``'s endpoint may take only path parameters, the ``Request``, and
dependencies that are coroutines taking the ``Request`` (the scope checks of
``tagloop.api.auth``); it reads its body itself and returns a ``Response``.

``DirectApp`` (the FastAPI app) answers requests for its direct routes before its own
stack: each passes through the same ``outer`` middleware as every request (limits and
metrics) and its errors through the app's exception handlers (by the error's MRO, the
app's 500 handler for the rest), but not through the seven
layers of routing and middleware FastAPI and Starlette put around every route (65-90 µs a
classify request here: +30 % req/s). Everything else goes the usual way.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from tagloop.api.errors import native_error
from tagloop.errors import Unexpected

log = logging.getLogger(__name__)
_HANDLER = "tagloop.direct_handler"


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        dependant = self.dependant
        if dependant.query_params or dependant.header_params or dependant.body_params:
            raise TypeError(f"{self.path}: a direct route takes path parameters, the request and scopes only")
        path_names = [param.name for param in dependant.path_params]
        request_name = dependant.request_param_name
        checks: list[tuple[str | None, Callable[[Request], Coroutine[Any, Any, Any]]]] = []
        for dependency in dependant.dependencies:
            if dependency.call is None:
                raise TypeError(f"{self.path}: a direct route's dependencies are scope checks")
            checks.append((dependency.name, dependency.call))
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            values: dict[str, Any] = {name: request.path_params[name] for name in path_names}
            if request_name:
                values[request_name] = request
            for name, check in checks:
                checked = await check(request)
                if name:
                    values[name] = checked
            return await endpoint(**values)

        return handler


class DirectApp(FastAPI):
    """A FastAPI app that answers its ``DirectRoute`` requests ahead of its stack.

    Call ``go_direct(outer, routers)`` once every route is added: the direct routes of
    ``routers`` (included in the app without a prefix of their own) are answered first;
    ``outer`` wraps an ASGI app in the middleware every request must pass (it is also added
    to the app for the other routes).
    """

    _direct: list[tuple[APIRoute, Callable[[Request], Coroutine[Any, Any, Response]]]] | None = None
    _direct_app: ASGIApp | None = None

    def go_direct(self, outer: Callable[[ASGIApp], ASGIApp], routers: Sequence[APIRouter]) -> None:
        self._direct = [
            (route, route.get_route_handler())
            for router in routers
            for route in router.routes
            if isinstance(route, DirectRoute)
        ]
        self._direct_app = outer(self._answer_direct)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._direct_app is not None and self._direct:
            for route, handler in self._direct:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope["app"] = self
                    scope.update(child)  # path parameters and scope["route"] (for metrics)
                    scope[_HANDLER] = handler
                    await self._direct_app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _answer_direct(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await scope[_HANDLER](request)
        except Exception as exc:  # what the app's exception handlers make of it, as for any route
            response = await self._handled(request, exc)
        await response(scope, receive, send)

    async def _handled(self, request: Request, exc: Exception) -> Response:
        for kind in type(exc).__mro__:
            if kind is Exception:  # what no handler of its own takes: as Starlette treats it below
                break
            handler = self.exception_handlers.get(kind)
            if handler is not None:
                return await _answer(handler, request, exc)
        # Starlette gives such an error to the app's 500 handler and re-raises it for the server
        # to log; here the request is answered, so it is logged here, with its traceback
        log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
        handler = self.exception_handlers.get(500) or self.exception_handlers.get(Exception)
        if handler is not None:
            return await _answer(handler, request, exc)
        return native_error(Unexpected("internal server error"))


async def _answer(handler: Callable[..., Any], request: Request, exc: Exception) -> Response:
    """What an exception handler answers (Starlette takes coroutines and plain functions)."""
    response = handler(request, exc)
    return await response if inspect.isawaitable(response) else response
