"""HTTP serving: single-document classify vs /healthz on the same server, and batch classify.

Starts `tagloop serve` with 1 and 2 worker processes on a 20ng classifier and drives it with
`wrk` (a separate C process; `apt-get install wrk`) at 32 and 64 connections: single-document
classify of 20ng test texts (capped at 5,000 characters), and in the same run `/healthz`.
Prints req/s, p50, p99, the classify/healthz ratio, non-2xx counts; then the latency of
classify at half that closed-loop rate (each wrk connection pauses between requests: a closed
loop of 32 connections at R req/s has a mean latency of 32/R whatever the server does, so p99
at a given offered load is the figure a client sees); then batch classify (`{"texts": [1,000
docs]}`) docs/s from one client and from two clients per worker, and the equivalent
Comprehend inference units (2 docs/s each).
Targets: classify ≥ 50% of /healthz req/s; p99 ≤ 20 ms at 32 connections; batch ≥ 10,000 docs/s.

`--routing` measures instead what review routing costs (issue 13's target: routing on, with a
threshold and a 5% audit, costs ≤ 5% of single-document classify req/s against routing off):
one server, the endpoint's policy switched off and on through `PUT /v1/endpoints/news/routing`
between interleaved wrk runs (off, on, off, on, ...), the median of each printed with the share
of answers routed (review tasks counted in the database).

What the ratio compares: tagloop's /healthz is an ordinary (async) FastAPI route, through the
app's routing and middleware stack; classify is a direct route that skips that stack
(`tagloop.api.direct`). For the floor, the same run also measures a bare ASGI app under the
same uvicorn set-up (`bare_asgi.py`, one process) and prints classify against it too.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
TAGLOOP = [sys.executable, "-m", "tagloop.cli"]
PACED = """
local pause = %d
delay = function()
  return pause
end
"""
LUA = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  counter = counter + 1
  return wrk.format(nil, "/v1/endpoints/news/classify", nil, bodies[(counter %% #bodies) + 1])
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(data_dir: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [*TAGLOOP, "--data-dir", str(data_dir), *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"tagloop {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def paced(script: Path, connections: int, rate: float) -> Path:
    """The classify script, each connection pausing so that all of them offer ``rate`` req/s."""
    pause = max(1, round(1000 * connections / rate))
    target = script.with_name(f"paced-{connections}-{pause}.lua")
    target.write_text(script.read_text(encoding="utf-8") + PACED % pause, encoding="utf-8")
    return target


def wrk(url: str, connections: int, seconds: int, script: Path | None) -> dict[str, float]:
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout

    def millis(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50": millis("50"),
        "p99": millis("99"),
        "bad": (int(non_2xx[1]) if non_2xx else 0) + (sum(map(int, errors.groups())) if errors else 0),
    }


def bare_floor(connections: int, seconds: int) -> dict[str, float]:
    """wrk against a bare ASGI app (``bare_asgi.py``) under uvicorn with httptools and asyncio."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bare_asgi:app", "--app-dir", str(ROOT / "benchmarks")]
    command += ["--port", str(port), "--http", "httptools", "--loop", "asyncio", "--no-access-log"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("the bare ASGI server did not start") from None
                time.sleep(0.2)
        return wrk(f"http://127.0.0.1:{port}/", connections, seconds, None)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def batch_throughput(base: str, headers: dict[str, str], body: bytes, clients: int, rounds: int) -> float:
    """Documents per second when ``clients`` send 1,000-document requests back to back."""
    url = f"{base}/v1/endpoints/news/classify"
    sessions = [httpx.Client(timeout=120, headers=headers | {"Content-Type": "application/json"})]
    sessions += [httpx.Client(timeout=120, headers=sessions[0].headers) for _ in range(clients - 1)]
    for session in sessions:
        assert session.post(url, content=body).status_code == 200  # warm every connection

    def send(session: httpx.Client) -> None:
        for _ in range(rounds):
            response = session.post(url, content=body)
            assert response.status_code == 200, response.text

    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=(session,)) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for session in sessions:
        session.close()
    return clients * rounds * 1_000 / elapsed


def start_server(
    data: Path, env: dict[str, str], workers: int, log_predictions: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [*TAGLOOP, "--data-dir", str(data), "serve", "--port", str(port), "--workers", str(workers)],
        env={**env, "TAGLOOP_LOG_PREDICTIONS": str(log_predictions).lower()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("server did not start")
        time.sleep(0.2)


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and every process below it (the
    server's workers, its prediction log and review task writers), from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += times.get(current, 0.0)
        stack.extend(child for child, parent in parents.items() if parent == current)
    return total


def warm_up(base: str, headers: dict[str, str], requests: int) -> None:
    for _ in range(requests):
        httpx.post(
            f"{base}/v1/endpoints/news/classify", json={"text": "warm up"}, headers=headers, timeout=120
        )


def review_tasks(data: Path) -> int:
    from sqlalchemy import func, select

    from tagloop.storage.database import Database
    from tagloop.storage.tables import ReviewTaskRow

    database = Database(f"sqlite:///{data / 'tagloop.db'}")
    try:
        with database.reading() as session:
            return int(session.scalar(select(func.count()).select_from(ReviewTaskRow)) or 0)
    finally:
        database.dispose()


def routing_cost(args: argparse.Namespace, texts: list[str]) -> None:
    """Single-document classify req/s with routing off and on (threshold + 5% audit), interleaved.

    The loop ticker is off (TAGLOOP_LOOP_TICK_SECONDS=0): its monitoring part imports scipy.stats
    and scores the version's test set for its drift reference inside the serving process (seconds
    of CPU, once per TAGLOOP_MONITOR_SECONDS), which lands on whichever run is going then and has
    nothing to do with routing (py-spy of the server under wrk showed it in the slowest runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGLOOP_")}
    env["TAGLOOP_LOOP_TICK_SECONDS"] = "0"
    policy = {"threshold": args.threshold, "audit": 0.05}
    results: dict[tuple[int, int], dict[str, list[dict[str, float]]]] = {}
    routed_share: dict[tuple[int, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        train, test = args.data_dir / "20ng_train.csv.gz", args.data_dir / "20ng_test.csv.gz"
        run(data, env, "train", "news", "--data", str(train), "--test", str(test))
        run(data, env, "endpoints", "create", "news", "--classifier", "news")
        secret = json.loads(
            run(data, env, "keys", "create", "--name", "bench", "--scope", "classify", "--json")
        )
        admin = json.loads(run(data, env, "keys", "create", "--name", "boss", "--scope", "admin", "--json"))
        bodies = work / "bodies.jsonl"
        bodies.write_text(
            "\n".join(json.dumps({"text": text}) for text in texts[:2000]) + "\n", encoding="utf-8"
        )
        script = work / "classify.lua"
        script.write_text(LUA % (bodies, secret["secret"]), encoding="utf-8")
        for workers in map(int, args.workers.split(",")):
            server, base = start_server(data, env, workers, not args.no_log)
            try:
                headers = {"Authorization": f"Bearer {secret['secret']}"}
                admin_headers = {"Authorization": f"Bearer {admin['secret']}"}
                url = f"{base}/v1/endpoints/news/routing"
                assert httpx.put(url, json={"audit": 1.0}, headers=admin_headers).status_code == 200
                time.sleep(1.5)
                warm_up(base, headers, 8 * workers)  # load the model, start the task writer, in every process
                for connections in map(int, args.connections.split(",")):
                    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
                    routed = 0
                    on_requests = 0.0
                    for round_ in range(args.rounds):
                        # ABBA order: throughput drifts down as the log and task tables grow,
                        # so "on" must not always run second
                        for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                            response = httpx.put(
                                url, json=policy if mode == "on" else {}, headers=admin_headers
                            )
                            assert response.status_code == 200, response.text
                            time.sleep(1.5)  # every worker process follows the change (0.5 s)
                            before = review_tasks(data)
                            cpu = tree_cpu_seconds(server.pid)
                            measured = wrk(base, connections, args.seconds, script)
                            time.sleep(0.5)  # the writers finish what the run sent
                            cpu = tree_cpu_seconds(server.pid) - cpu
                            measured["cpu_ms"] = 1000 * cpu / max(1.0, measured["rps"] * args.seconds)
                            runs[mode].append(measured)
                            if mode == "on":
                                routed += review_tasks(data) - before
                                on_requests += measured["rps"] * args.seconds
                    results[(workers, connections)] = runs
                    routed_share[(workers, connections)] = routed / max(1.0, on_requests)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=30)
    print(f"cores: {os.cpu_count()}, {args.seconds} s per run, wrk -t 1, {args.rounds} interleaved runs each")
    logged = "off" if args.no_log else "on"
    print(f"routing on: threshold {args.threshold} + audit 0.05; prediction log {logged}\n")
    print(
        "| workers | conn | off req/s (median) | on req/s (median) | cost | routed | p99 off | on | failed |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    verdicts, cpu_rows = [], []
    for (workers, connections), runs in results.items():
        off = sorted(r["rps"] for r in runs["off"])[len(runs["off"]) // 2]
        on = sorted(r["rps"] for r in runs["on"])[len(runs["on"]) // 2]
        off_p99 = sorted(r["p99"] for r in runs["off"])[len(runs["off"]) // 2]
        on_p99 = sorted(r["p99"] for r in runs["on"])[len(runs["on"]) // 2]
        failed = sum(r["bad"] for mode in runs.values() for r in mode)
        cost = 1 - on / off
        share = routed_share[(workers, connections)]
        print(
            f"| {workers} | {connections} | {off:,.0f} | {on:,.0f} | {cost:.1%} | {share:.1%} "
            f"| {off_p99:.1f} | {on_p99:.1f} | {failed} |"
        )
        verdicts.append((workers, connections, cost))
        cpu_off = sorted(r["cpu_ms"] for r in runs["off"])[len(runs["off"]) // 2]
        cpu_on = sorted(r["cpu_ms"] for r in runs["on"])[len(runs["on"]) // 2]
        cpu_rows.append((workers, connections, cpu_off, cpu_on))
    print(
        "\nCPU time of the server's processes per request (medians; robust to other load on the machine):\n"
    )
    print("| workers | conn | off ms/request | on ms/request | cost |")
    print("|---:|---:|---:|---:|---:|")
    for workers, connections, cpu_off, cpu_on in cpu_rows:
        print(f"| {workers} | {connections} | {cpu_off:.3f} | {cpu_on:.3f} | {cpu_on / cpu_off - 1:.1%} |")
    print("\nevery pair of runs, in order (req/s; off/on, the two run in ABBA order):")
    for (workers, connections), runs in results.items():
        pairs = ", ".join(
            f"{a['rps']:,.0f}/{b['rps']:,.0f}" for a, b in zip(runs["off"], runs["on"], strict=True)
        )
        print(f"- {workers} worker(s), {connections} conn, off/on: {pairs}")
    print("\ntargets:")
    for workers, connections, cost in verdicts:
        verdict = "PASS" if cost <= 0.05 else "FAIL"
        print(
            f"- {workers} worker(s), {connections} conn: routing costs ≤ 5% of req/s: {cost:.1%} → {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", default="32,64")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--routing", action="store_true", help="Measure routing on against off instead.")
    parser.add_argument("--rounds", type=int, default=5, help="--routing: interleaved runs of each.")
    parser.add_argument("--threshold", type=float, default=0.5, help="--routing: the policy's threshold.")
    parser.add_argument(
        "--no-log", action="store_true", help="--routing: with TAGLOOP_LOG_PREDICTIONS=false."
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with gzip.open(args.data_dir / "20ng_test.csv.gz", "rt", encoding="utf-8", newline="") as handle:
        texts = [row[1][:5_000] for row in csv.reader(handle)]
    if args.routing:
        routing_cost(args, texts)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGLOOP_")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        train = args.data_dir / "20ng_train.csv.gz"
        run(
            data,
            env,
            "train",
            "news",
            "--data",
            str(train),
            "--test",
            str(args.data_dir / "20ng_test.csv.gz"),
        )
        run(data, env, "endpoints", "create", "news", "--classifier", "news")
        secret = json.loads(
            run(data, env, "keys", "create", "--name", "bench", "--scope", "classify", "--json")
        )["secret"]
        bodies = work / "bodies.jsonl"
        bodies.write_text(
            "\n".join(json.dumps({"text": text}) for text in texts[:2000]) + "\n", encoding="utf-8"
        )
        script = work / "classify.lua"
        script.write_text(LUA % (bodies, secret), encoding="utf-8")
        rows, paced_rows, batch_rates = [], [], {}
        for workers in map(int, args.workers.split(",")):
            server, base = start_server(data, env, workers)
            try:
                headers = {"Authorization": f"Bearer {secret}"}
                warm_up(base, headers, 4 * workers)  # load the model in every process
                for connections in map(int, args.connections.split(",")):
                    classify = wrk(base, connections, args.seconds, script)
                    health = wrk(f"{base}/healthz", connections, args.seconds, None)
                    rows.append((workers, connections, classify, health))
                for connections in map(int, args.connections.split(",")):
                    half = rows[-len(args.connections.split(",")) :]
                    capacity = next(r[2]["rps"] for r in half if r[1] == connections)
                    steady = wrk(base, connections, args.seconds, paced(script, connections, capacity / 2))
                    paced_rows.append((workers, connections, capacity / 2, steady))
                batch = orjson.dumps({"texts": texts[:1000]})
                batch_rates[workers] = {
                    clients: batch_throughput(base, headers, batch, clients, rounds=10)
                    for clients in (1, 2 * workers)  # several: the kernel spreads connections by hash
                }
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=30)
    floor = {c: bare_floor(c, args.seconds) for c in map(int, args.connections.split(","))}
    print(f"cores: {os.cpu_count()}, {args.seconds} s per run, wrk -t 1\n")
    print(
        "| workers | conn | classify req/s | p50 ms | p99 ms | healthz req/s | healthz p99 | ratio | failed |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, connections, classify, health in rows:
        ratio = classify["rps"] / health["rps"]
        failed = classify["bad"] + health["bad"]
        latency = f"{classify['p50']:.1f} | {classify['p99']:.1f}"
        print(
            f"| {workers} | {connections} | {classify['rps']:,.0f} | {latency} "
            f"| {health['rps']:,.0f} | {health['p99']:.1f} | {ratio:.0%} | {failed} |"
        )
    print("\nclassify at half the closed-loop rate (each wrk connection paces itself):\n")
    print("| workers | conn | offered req/s | served req/s | p50 ms | p99 ms | failed |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for workers, connections, offered, steady in paced_rows:
        print(
            f"| {workers} | {connections} | {offered:,.0f} | {steady['rps']:,.0f} | {steady['p50']:.1f} "
            f"| {steady['p99']:.1f} | {steady['bad']} |"
        )
    print("\n| workers | clients | batch docs/s (texts: 1,000 per request) | inference units (2 docs/s) |")
    print("|---:|---:|---:|---:|")
    for workers, by_clients in batch_rates.items():
        for clients, rate in by_clients.items():
            print(f"| {workers} | {clients} | {rate:,.0f} | {rate / 2:,.0f} |")
    print("\nthe floor: a bare ASGI app, same uvicorn set-up, one process (bare_asgi.py):\n")
    print("| conn | bare req/s | bare p99 ms | classify (1 worker) / bare |")
    print("|---:|---:|---:|---:|")
    for connections, bare in floor.items():
        one = next((row[2]["rps"] for row in rows if row[0] == 1 and row[1] == connections), None)
        share = f"{one / bare['rps']:.0%}" if one else "-"
        print(f"| {connections} | {bare['rps']:,.0f} | {bare['p99']:.1f} | {share} |")
    best = max(row[2]["rps"] for row in rows)
    print(f"\nsingle-document classify at best {best:,.0f} req/s = {best / 2:,.0f} inference units")
    print("\ntargets:")

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    for workers, connections, classify, health in rows:
        ratio = classify["rps"] / health["rps"]
        where = f"{workers} worker(s), {connections} conn"
        print(f"- {where}: classify ≥ 50% of healthz: {ratio:.0%} → {verdict(ratio >= 0.5)}")
        if connections == 32:
            p99 = classify["p99"]
            print(f"- {workers} worker(s), 32 conn: p99 ≤ 20 ms: {p99:.1f} ms → {verdict(p99 <= 20)}")
    for workers, connections, _, steady in paced_rows:
        if connections == 32:
            p99 = steady["p99"]
            print(
                f"- {workers} worker(s), 32 conn, half load: p99 ≤ 20 ms: {p99:.1f} ms → {verdict(p99 <= 20)}"
            )
    for workers, by_clients in batch_rates.items():
        for clients, rate in by_clients.items():
            where = f"{workers} worker(s), {clients} client(s)"
            print(f"- {where}: batch ≥ 10,000 docs/s: {rate:,.0f} → {verdict(rate >= 10_000)}")


if __name__ == "__main__":
    main()
