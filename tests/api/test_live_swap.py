"""Re-pointing an endpoint under load: a real server with two worker processes, no failed
request, and every process follows every swap in order (it never goes back to a version
it has left). No timing is asserted: how fast processes follow is measured by benchmarks.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import httpx
import pytest

from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

WORKERS = 2
CONNECTIONS_PER_WORKER = 3
TARGETS = ["v1", "v2", "v3", "v1", "v2", "v3"]
"""What the endpoint points at in each epoch: epoch 0 is its creation, then one swap each.
Three versions in turn, so the version before a swap is never the one after the next."""
HANG_GUARD_SECONDS = 120  # fails a test that would hang; not a speed check


@dataclass(frozen=True)
class Answer:
    process: int | None  # None: its connection closed before the test could ask
    started: int  # on the test's event clock (``tick``)
    finished: int
    status: int
    version: str | None


class Log:
    """Answers and swaps on one clock of events, so the test can order them without time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clock = itertools.count(1)
        self.answers: list[Answer] = []
        self.swap_started: list[int] = [0]  # per epoch: before this event it did not point there
        self.swap_done: list[int] = [0]  # per epoch: from this event on it points there

    def tick(self) -> int:
        with self.lock:
            return next(self.clock)

    def epoch_of(self, answer: Answer) -> int:
        """The latest epoch whose version the answer names and that had begun by its end."""
        return max(
            epoch
            for epoch, target in enumerate(TARGETS[: len(self.swap_started)])
            if target == answer.version and self.swap_started[epoch] < answer.finished
        )

    def followed(self, epoch: int, processes: set[int]) -> bool:
        """Has every process served ``epoch``'s version to a request begun after the swap?"""
        with self.lock:
            answers = list(self.answers)
        done = self.swap_done[epoch]
        return processes <= {a.process for a in answers if a.started > done and a.version == TARGETS[epoch]}


def local_port(response: httpx.Response) -> int:
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


def test_swap_under_load_fails_no_request_and_every_process_follows_in_order(
    tmp_path, tickets, write_csv, free_port
):
    data_dir = tmp_path / "data"
    tagloop = Tagloop(Settings(data_dir=data_dir))
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    for _ in TARGETS[:3]:
        tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", TARGETS[0])["job_id"])
    secret = tagloop.keys.create("load", "classify")["secret"]
    port = free_port()
    command = [
        "tagloop.cli",
        "--data-dir",
        str(data_dir),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
    ]
    server = subprocess.Popen(
        [sys.executable, "-m", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    clients: list[httpx.Client] = []
    try:
        deadline = time.monotonic() + HANG_GUARD_SECONDS
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)

        # A kept-alive connection is answered by one process (SO_REUSEPORT): which one, /healthz
        # says. Open connections until every process has a few.
        process_of: dict[int, int] = {}  # local port of a connection -> server process
        by_process: defaultdict[int, list[httpx.Client]] = defaultdict(list)
        for _ in range(200):
            client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
            health = client.get("/healthz")
            process = health.json()["process"]
            process_of[local_port(health)] = process
            (by_process[process] if len(by_process[process]) < CONNECTIONS_PER_WORKER else clients).append(
                client
            )
            if len(by_process) == WORKERS and all(
                len(held) == CONNECTIONS_PER_WORKER for held in by_process.values()
            ):
                break
        else:
            pytest.fail(f"connections never reached {WORKERS} processes: {dict(by_process)}")
        for client in clients:  # the surplus
            client.close()
        clients = [client for held in by_process.values() for client in held]
        processes = set(by_process)

        log = Log()
        stop = threading.Event()
        failures: list[BaseException] = []

        def load(client: httpx.Client) -> None:
            try:
                while not stop.is_set():
                    started = log.tick()
                    response = client.post("/v1/endpoints/desk/classify", json={"text": "vpn keeps dropping"})
                    finished = log.tick()
                    port_ = local_port(response)
                    if port_ not in process_of:  # the connection was replaced: ask who answers it
                        health = client.get("/healthz")
                        if local_port(health) == port_:  # else it was replaced again: unknown
                            process_of[port_] = health.json()["process"]
                    version = response.json()["model_version"] if response.status_code == 200 else None
                    answer = Answer(process_of.get(port_), started, finished, response.status_code, version)
                    with log.lock:
                        log.answers.append(answer)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=load, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()

        def wait_until_followed(epoch: int) -> None:
            deadline = time.monotonic() + HANG_GUARD_SECONDS
            while not log.followed(epoch, processes):
                assert not failures, failures
                assert time.monotonic() < deadline, f"not every process ever served {TARGETS[epoch]}"
                time.sleep(0.05)

        wait_until_followed(0)
        for epoch, target in enumerate(TARGETS[1:], start=1):
            log.swap_started.append(log.tick())
            tagloop.queue.run_now(tagloop.endpoints.update("desk", target)["job_id"])
            log.swap_done.append(log.tick())
            wait_until_followed(epoch)
        stop.set()
        for thread in threads:
            thread.join()
        assert not failures, failures

        answers = log.answers
        assert {a.status for a in answers} == {200}, [a for a in answers if a.status != 200][:5]
        assert {a.process for a in answers} - {None} == processes  # no process died or was replaced
        for epoch in range(len(TARGETS)):  # every process served every swap...
            assert processes <= {a.process for a in answers if log.epoch_of(a) == epoch}, epoch
        for process in processes:  # ... in order: an answer never names an epoch older than
            served = sorted((a for a in answers if a.process == process), key=lambda a: a.started)
            ends = sorted(served, key=lambda a: a.finished)  # one the process answered before
            latest, seen = -1, 0
            for answer in served:
                while seen < len(ends) and ends[seen].finished < answer.started:
                    latest = max(latest, log.epoch_of(ends[seen]))
                    seen += 1
                assert log.epoch_of(answer) >= latest, (process, answer, latest)
        assert json.loads(httpx.get(f"{base}/healthz").text)["status"] == "ok"
    finally:
        for client in clients:
            client.close()
        server.terminate()
        server.wait(timeout=15)
        tagloop.close()
