"""benchmarks/pipeline.py, part "inbox": a dropped training file → an endpoint answering with
the version trained on it, beside ``tagloop train`` of the same file, in the same run.

On 20ng train (~11,300 documents, Comprehend CSV, unpacked once to a plain .csv):

- **train**: ``tagloop --data-dir TMP train bench --data FILE --json`` as a process in a fresh
  data folder (process start, import, split, fit, evaluate, save): what a person runs by hand
  before deploying by hand;
- **inbox, create**: a running ``tagloop serve --no-auth`` (its workers and inbox ticker,
  ``TAGLOOP_INBOX_POLL_SECONDS=0.5``; started and the inbox added before the clock starts) on a
  fresh data folder; the clock starts when the file is dropped the way the README says a
  writer should (written under a temporary name, renamed, then ``<name>.ready``) and stops
  when ``POST /v1/endpoints/bench/classify`` first answers with version v1 (polled every 50 ms):
  pick-up, import, fit, evaluate, the endpoint created, the model loaded by the server;
- **inbox, promote**: on that server, a second classifier whose endpoint serves a weak v1
  (trained by the inbox on a tenth of the file, not timed), then the whole file dropped: the
  clock stops when the endpoint answers with v2 (trained, compared with the champion on
  its held-out set by the loop's rule, promoted, followed by the endpoint).

Target (issue 15): each inbox time ≤ 1.3 × the train time. ``--zip`` (20ng as a zip of
per-label files read by an import profile) needs the import profiles of issue 15: the hook is
:func:`drop_zip`, filled in once ``tagloop profiles`` exists.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TARGET = 1.3
POLL_SECONDS = 0.05
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"


def tagloop_command() -> list[str]:
    script = Path(sys.executable).parent / "tagloop"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tagloop.cli"]


def environment(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAGLOOP_")}
    return clean | {"TAGLOOP_LOOP_TICK_SECONDS": "0"} | extra


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drop(source: Path, folder: Path, name: str) -> None:
    """Drop a file as a careful writer does: a temporary name, a rename, then the marker."""
    temporary = folder / f".{name}.part"
    shutil.copyfile(source, temporary)
    os.replace(temporary, folder / name)
    (folder / f"{name}.ready").touch()


def drop_zip(folder: Path, train: Path) -> None:
    """The hook for the zip of per-label files (one ``<label>.txt`` per label, read by an import
    profile that takes the label from the member's name): needs ``tagloop profiles``."""
    raise NotImplementedError("the zip part needs the import profiles of issue 15 (tagloop profiles)")


def wait_for_version(client: httpx.Client, endpoint: str, version: str, deadline: float) -> float:
    """Poll the endpoint until it answers with ``version``; the moment it did."""
    while True:
        response = client.post(f"/v1/endpoints/{endpoint}/classify", json={"text": "graphics card driver"})
        if response.status_code == 200 and response.json().get("model_version") == version:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"endpoint {endpoint} never answered with {version}: {response.text[:200]}")
        time.sleep(POLL_SECONDS)


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[-6:])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def measure(train_gz: Path, timeout: float = 900.0) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tagloop-bench-inbox-") as folder:
        root = Path(folder)
        data = root / "20ng_train.csv"
        with gzip.open(train_gz, "rb") as source, data.open("wb") as target:
            shutil.copyfileobj(source, target)
        lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
        tenth = root / "tenth.csv"
        tenth.write_text("".join(lines[::10]), encoding="utf-8")
        command = tagloop_command()

        print("tagloop train (a process, fresh data folder)", file=sys.stderr)
        started = time.perf_counter()
        trained = json.loads(
            run(
                [
                    *command,
                    "--data-dir",
                    str(root / "plain"),
                    "train",
                    "bench",
                    "--data",
                    str(data),
                    "--json",
                ],
                environment(),
            )
        )
        figures["train_seconds"] = time.perf_counter() - started
        figures["train_f1"] = trained["metrics"]["F1Score"]

        served = root / "served"
        create, promote = root / "drop-create", root / "drop-promote"
        create.mkdir()
        promote.mkdir()
        env = environment(TAGLOOP_INBOX_POLL_SECONDS="0.5")
        for classifier, where in (("bench", create), ("weak", promote)):
            run([*command, "--data-dir", str(served), "inbox", "add", classifier, str(where)], env)
        port = free_port()
        server = subprocess.Popen(
            [*command, "--data-dir", str(served), "serve", "--no-auth", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                deadline = time.perf_counter() + 60
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.perf_counter() > deadline or server.poll() is not None:
                        raise RuntimeError("tagloop serve did not start")
                    time.sleep(0.1)

                print("inbox, create: the whole file dropped, no endpoint yet", file=sys.stderr)
                started = time.perf_counter()
                drop(data, create, "20ng.csv")
                answered = wait_for_version(client, "bench", "v1", started + timeout)
                figures["inbox_create_seconds"] = answered - started

                print("inbox, promote: a weak v1 first (not timed)", file=sys.stderr)
                drop(tenth, promote, "tenth.csv")
                wait_for_version(client, "weak", "v1", time.perf_counter() + timeout)
                print("inbox, promote: the whole file dropped", file=sys.stderr)
                started = time.perf_counter()
                drop(data, promote, "20ng.csv")
                answered = wait_for_version(client, "weak", "v2", started + timeout)
                figures["inbox_promote_seconds"] = answered - started
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        status = json.loads(run([*command, "--data-dir", str(served), "inbox", "status", "--json"], env))
        for inbox in status:
            for file in inbox["recent_files"]:
                if file["name"] == "20ng.csv":
                    report = file["report"] or {}
                    figures[f"{inbox['name']}_file"] = {
                        "state": file["state"],
                        "version": file["version"],
                        "deployment": report.get("deployment"),
                        "reason": report.get("reason"),
                        "F1Score": (report.get("metrics") or {}).get("F1Score"),
                    }
    return figures


def report(figures: dict[str, Any]) -> bool:
    train = figures["train_seconds"]
    print(f"tagloop train (process)             {train:8.1f} s   F1 {figures['train_f1']:.4f}")
    ok = True
    for key, label in (
        ("inbox_create_seconds", "inbox → new endpoint"),
        ("inbox_promote_seconds", "inbox → promoted"),
    ):
        ratio = figures[key] / train
        passed = ratio <= TARGET
        ok &= passed
        print(
            f"{label:36s}{figures[key]:8.1f} s   {ratio:.2f}x train  "
            f"(target ≤ {TARGET}x: {'PASS' if passed else 'FAIL'})"
        )
    for name in ("bench_file", "weak_file"):
        if name in figures:
            print(f"  {name}: {figures[name]}")
    return ok


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dataset", default="20ng")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    args = parser.parse_args(argv)
    train = args.data_dir / f"{args.dataset}_train.csv.gz"
    if not train.exists():
        print(f"missing {train}", file=sys.stderr)
        return 2
    figures = measure(train)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
