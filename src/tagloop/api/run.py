"""Running the app under uvicorn (``tagloop serve``), tuned for many small requests.

With several workers, uvicorn binds one listening socket in the parent and hands it to
every worker. Two things go wrong with that, both measured here with 2 workers:

- the socket is made with protocol 0; the connections it accepts inherit that, asyncio then
  does not recognize them as TCP and leaves Nagle's algorithm on, so every response waits
  for the client's delayed ACK (about 40 ms a request: 720 req/s where 1 worker did 4,000);
- whichever worker wakes first accepts a whole burst of new connections, so kept-alive
  clients can all land on one worker (75 % CPU against 10 % in one run) while the other idles.

So each worker listens on a socket of its own, bound to the same address with
``SO_REUSEPORT``: the kernel spreads new connections across the workers, and every socket
is TCP with ``TCP_NODELAY``. The parent keeps the port reserved with a bound socket that
never listens.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

APP = "tagloop.api.server:create_app"
log = logging.getLogger("uvicorn.error")


def listener(family: int, address: Any) -> socket.socket:
    """A TCP socket bound to ``address`` in the ``SO_REUSEPORT`` group (asyncio listens on it)."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(address)
    return sock


class WorkerSocket:
    """Stands for a listening socket in the parent. uvicorn pickles the sockets it gives a
    worker; unpickled there, this becomes the worker's own ``listener`` on the address."""

    def __init__(self, family: int, address: Any) -> None:
        self.family = family
        self.address = address

    def __reduce__(self) -> tuple[Any, tuple[int, Any]]:
        return listener, (self.family, self.address)


def run_server(host: str, port: int, workers: int = 1, access_log: bool = False) -> None:
    config = uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        http="httptools",  # a C parser: a third more requests per second than h11
        loop="asyncio",  # uvloop is faster on average but starved some connections (p99 ×5 here)
    )
    if config.workers <= 1:
        uvicorn.Server(config).run()
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reserved = listener(family, (host, port))  # never listens: holds the port, resolves port 0
    address = reserved.getsockname()
    log.info("Uvicorn running on http://%s:%d, %d workers (CTRL+C to quit)", host, address[1], workers)
    try:
        Multiprocess(config, sockets=[WorkerSocket(family, address)]).run()  # type: ignore[list-item]
    finally:
        reserved.close()
