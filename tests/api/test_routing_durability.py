"""The issue's hard rule: a routed prediction whose task was not yet written when the server is
killed is still there after restart, or the answer did not say routed.

A real ``tagloop serve`` process (uvicorn) with routing on is loaded by several clients and
SIGKILLed (with its whole process group) in the middle; then started again: every answer that
said ``routed`` names a task that is in the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage import migrate
from tagloop.storage.tables import ReviewTaskRow

CLIENTS = 8
ROUTED_BEFORE_KILL = 150


def start_server(data_dir: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tagloop.cli", "--data-dir", str(data_dir), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: the kill takes the log writer too
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "server did not start within 60 s"
        time.sleep(0.2)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_routed_answers_survive_a_kill(request, backend, tmp_path, tickets, write_csv, free_port):
    data_dir = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    overrides: dict[str, object] = {"data_dir": data_dir}
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_db")
        overrides["database_url"] = env["TAGLOOP_DATABASE_URL"] = url
    tagloop = Tagloop(Settings(**overrides))  # type: ignore[arg-type]
    try:
        if not tagloop.database.is_embedded:
            migrate.upgrade(tagloop.database)
        data = write_csv([list(row) for row in tickets], "tickets.csv")
        tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
        tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk")["job_id"])
        tagloop.endpoints.set_routing("desk", {"threshold": 0.6, "audit": 0.3})
        secret = tagloop.keys.create("load", "classify")["secret"]
    finally:
        tagloop.close()
    texts = [text for text, _ in tickets]
    port = free_port()
    server = start_server(data_dir, port, env)
    routed: list[str] = []
    answered = [0]
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(number: int) -> None:
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as http:
            sent = number
            while not stop.is_set():
                sent += 1
                body = {"text": texts[sent % len(texts)]} if sent % 4 else {"texts": texts[sent % 7 :][:12]}
                try:
                    response = http.post("/v1/endpoints/desk/classify", json=body)
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    return
                answer = response.json()
                results = answer.get("results", [answer])
                with lock:
                    answered[0] += 1
                    routed.extend(r["review"]["task_id"] for r in results if r["review"]["routed"])

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(routed) < ROUTED_BEFORE_KILL:
            assert not failures, failures[:3]
            assert time.monotonic() < deadline, f"only {len(routed)} routed answers in 120 s"
            time.sleep(0.01)
        os.killpg(server.pid, signal.SIGKILL)  # in the middle of the load, requests in flight
        server.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        said_routed = set(routed)
        server = start_server(data_dir, port, env)  # a restart, on the same data
    finally:
        stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    check = Tagloop(Settings(**overrides))  # type: ignore[arg-type]
    try:
        with check.database.reading() as session:
            stored = set(session.scalars(select(ReviewTaskRow.id).where(ReviewTaskRow.endpoint == "desk")))
    finally:
        check.close()
    assert not failures, failures[:3]
    assert len(said_routed) >= ROUTED_BEFORE_KILL and answered[0] > len(said_routed) / 2
    assert said_routed <= stored, f"{len(said_routed - stored)} answers said routed, their tasks are gone"
