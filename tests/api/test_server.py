"""The HTTP server: health endpoint served by the real app over a real loopback socket."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

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
