"""Re-pointing an endpoint under load: a real server with two worker processes, no failed request."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx

from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_swap_under_load_fails_no_request(tmp_path, tickets, write_csv):
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    tagloop = Tagloop(settings)
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", "v1")["job_id"])  # load, verify, serve
    secret = tagloop.keys.create("load", "classify")["secret"]
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tagloop.cli",
            "--data-dir",
            str(data_dir),
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        statuses: Counter[int] = Counter()
        versions: Counter[str] = Counter()
        stop = threading.Event()
        lock = threading.Lock()

        def load() -> None:
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=10
            ) as client:
                while not stop.is_set():
                    response = client.post("/v1/endpoints/desk/classify", json={"text": "vpn keeps dropping"})
                    with lock:
                        statuses[response.status_code] += 1
                        if response.status_code == 200:
                            versions[response.json()["model_version"]] += 1

        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        for target in ["v2", "v1", "v2", "v1", "v2"]:
            time.sleep(0.6)
            tagloop.queue.run_now(tagloop.endpoints.update("desk", target)["job_id"])
        time.sleep(1.2)  # every process follows within a second
        with lock:
            before = versions.copy()
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        assert set(statuses) == {200}, statuses
        assert versions["v1"] > 0 and versions["v2"] > 0
        assert (versions - before)["v1"] == 0, "a process still served v1 more than a second after the swap"
        assert json.loads(httpx.get(f"{base}/healthz").text)["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=15)
        tagloop.close()
