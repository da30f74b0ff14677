"""The floor of an HTTP answer in Python here: a bare ASGI app under uvicorn (httptools, asyncio),
as `tagloop serve` runs, answering a /healthz-sized JSON body. `serve.py` measures it beside
tagloop's own /healthz (an ordinary FastAPI route) and classify (a direct route)."""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok","version":"0.1.0","process":1}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
