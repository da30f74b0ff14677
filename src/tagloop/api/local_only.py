"""No-auth (development) mode: a server without API keys answers only its own machine.

Authentication is off when ``TAGLOOP_AUTH=false`` or ``tagloop serve --no-auth`` (which sets
the same setting, so one value decides). Such a server then:

- listens on a loopback host only (:func:`check_bind`; ``tagloop serve`` refuses any other);
- answers only requests that come from a loopback address, name the server by one of its
  loopback names (``127.0.0.1``, ``localhost``, ``[::1]`` or the address it is bound to)
  with its port in the ``Host`` header, and are not cross-origin: an ``Origin`` header other
  than the server's own, or ``Sec-Fetch-Site: cross-site``, is refused (:class:`LocalOnly`).

The ``Host`` check stops DNS rebinding (a web page whose name resolves to 127.0.0.1 sends its
own name as ``Host``); the ``Origin`` check stops drive-by requests that a browser sends
without a CORS preflight, such as a ``text/plain`` POST of a CBOR body to the Comprehend API.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tagloop.errors import ConfigurationError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@lru_cache(maxsize=256)  # asked per request (client address, Host): parsing cost 2 % of a classify
def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address, ``[v6]``, or ``localhost``) names this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str) -> None:
    """Refuse to serve without authentication on anything but a loopback host."""
    if not is_loopback(host):
        raise ConfigurationError(
            f"authentication is off (--no-auth or TAGLOOP_AUTH=false), so the server listens on a "
            f"loopback host only (127.0.0.1, ::1, localhost), not on {host!r}"
        )


def _split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` of a Host header (``[v6]:port`` too); the port is None when absent or invalid."""
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name += "]"
        port = rest.removeprefix(":") if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name, port = value, ""
    if not port:
        return name.lower(), None
    return name.lower(), int(port) if port.isdigit() else -1


def _address_name(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def refusal(scope: Scope) -> str | None:
    """Why a no-auth server must not answer this request, or None if it may."""
    client = scope.get("client")
    if client and client[0] and not is_loopback(client[0]):
        return f"request from {client[0]}: this server (authentication off) answers this machine only"
    headers = dict(scope["headers"])
    host = headers.get(b"host", b"").decode("latin-1")
    name, port = _split_host(host)
    server = scope.get("server")
    names = set(LOOPBACK_NAMES)
    own_port = None
    if server:
        names.add(_address_name(str(server[0])).lower())
        own_port = server[1]
    default_port = 443 if scope.get("scheme") in ("https", "wss") else 80
    if name not in names or (own_port is not None and (port or default_port) != own_port):
        return (
            f"Host {host!r} is not this server: without authentication it answers requests to "
            f"127.0.0.1, localhost or [::1] on its own port only (DNS rebinding protection)"
        )
    origin = headers.get(b"origin")
    if origin is not None:
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        if origin.decode("latin-1").lower() != f"{scheme}://{host.lower()}":
            return f"cross-origin request from {origin.decode('latin-1')!r} refused (authentication is off)"
    if headers.get(b"sec-fetch-site", b"").lower() == b"cross-site":
        return "cross-site request refused (authentication is off)"
    return None


class LocalOnly:
    """Pure ASGI middleware of a no-auth server: refuses what :func:`refusal` finds (403)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            reason = refusal(scope)
            if reason is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
                    return
                body = {"error": {"type": "AccessDeniedException", "message": reason}}
                await JSONResponse(body, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
