"""A route class for hot paths: documented by FastAPI from the endpoint's signature, but
called without FastAPI's per-request dependency resolution and response validation.

The endpoint may take only path parameters, the ``Request``, and dependencies that are
coroutines taking the ``Request`` (the scope checks of ``tagloop.api.auth``); it reads its
body itself and returns a ``Response``. Errors it raises reach the app's exception
handlers as from any route.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        dependant = self.dependant
        if dependant.query_params or dependant.header_params or dependant.body_params:
            raise TypeError(f"{self.path}: a direct route takes path parameters, the request and scopes only")
        path_names = [param.name for param in dependant.path_params]
        request_name = dependant.request_param_name
        checks = [(dependency.name, dependency.call) for dependency in dependant.dependencies]
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            values: dict[str, Any] = {name: request.path_params[name] for name in path_names}
            if request_name:
                values[request_name] = request
            for name, check in checks:
                values[name] = await check(request)
            return await endpoint(**values)

        return handler
