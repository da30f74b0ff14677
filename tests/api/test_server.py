"""The HTTP server: health endpoint served by the real app over a real loopback socket."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from tagloop.api.server import create_app


def test_healthz_in_process(settings):
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_answers_on_loopback(tmp_path):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tagloop.cli", "--data-dir", str(tmp_path), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start within 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert (tmp_path / "tagloop.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _listening_sockets(port: int) -> int:
    """How many sockets listen on ``port`` (Linux's /proc/net/tcp, state 0A)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A")


def test_workers_each_listen_and_share_new_connections(tmp_path):
    """With --workers 2 every worker has its own SO_REUSEPORT socket: the kernel spreads new
    connections over both (uvicorn's one shared socket let one worker take a whole burst)."""
    port = _free_port()
    command = [sys.executable, "-m", "tagloop.cli", "--data-dir", str(tmp_path), "serve"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 60
        answered: set[int] = set()
        while len(answered) < 2:  # both workers up and reached over fresh connections
            try:
                answered.add(httpx.get(url, timeout=1).json()["process"])
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, f"only processes {answered} answered"
            time.sleep(0.05)
        seen = [httpx.get(url, timeout=5).json()["process"] for _ in range(40)]
        assert set(seen) == answered and min(seen.count(pid) for pid in answered) >= 5
        assert process.pid not in answered  # the parent supervises, workers serve
        assert _listening_sockets(port) == 2  # one per worker (uvicorn alone would have one, shared)
    finally:
        process.terminate()
        process.wait(timeout=15)
