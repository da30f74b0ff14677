"""Crash tests: a real worker process is SIGKILLed in the middle of a training job.

The job must complete on the next worker, the version it trains must end TRAINED, and the
version trained before must serve the whole time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagloop.app import Tagloop
from tagloop.settings import Settings

WORDS = {label: [f"{label.lower()}{i}" for i in range(400)] for label in ("ALPHA", "BETA", "GAMMA", "DELTA")}
SHARED = [f"common{i}" for i in range(3000)]


BIG = 8_000
"""Documents of the set a killed worker trains: training takes seconds, so a kill lands mid-job
(polls read the job every 20 ms through one open app; the inbox crash test trains as many)."""


def synthetic_csv(path: Path, documents: int, seed: int = 0) -> Path:
    """A labelled set big enough that training takes seconds (so a kill lands mid-job)."""
    rng = random.Random(seed)
    labels = sorted(WORDS)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(documents):
            label = rng.choice(labels)
            words = rng.choices(WORDS[label], k=25) + rng.choices(SHARED, k=120)
            rng.shuffle(words)
            handle.write(f"{label},{' '.join(words)}\n")
    return path


def tagloop(data_dir: Path, *args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tagloop.cli", "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def run(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    process = tagloop(data_dir, *args, env=env)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


_READERS: dict[tuple[str, str | None], Tagloop] = {}


def reading_app(settings: Settings) -> Tagloop:
    """One app per data dir and database, kept open for the test's polls (closed by
    ``close_readers``): building an app per poll would poll slowly and take CPU from the worker."""
    key = (str(settings.data_dir), settings.database_url)
    if key not in _READERS:
        _READERS[key] = Tagloop(settings)
    return _READERS[key]


@pytest.fixture(autouse=True)
def close_readers() -> Iterator[None]:
    yield
    while _READERS:
        _READERS.popitem()[1].close()


def job(data_dir: Path, job_id: str, settings: Settings | None = None) -> dict:
    """Read the job record straight from the database (a CLI call would poll too slowly)."""
    return reading_app(settings or Settings(data_dir=data_dir)).jobs.show(job_id)


@pytest.fixture(params=["local", "procrastinate"])
def crash_env(request, tmp_path) -> dict[str, str]:
    """Environment for worker processes of each adapter (short leases so recovery is quick)."""
    env = {"TAGLOOP_JOB_LEASE_SECONDS": "2", "TAGLOOP_JOBS": request.param}
    if request.param == "procrastinate":
        env["TAGLOOP_DATABASE_URL"] = request.getfixturevalue("procrastinate_db")
    return env


def test_training_survives_a_killed_worker(tmp_path, crash_env):
    kill_at = 0.1  # in the middle of training (counting the words of the documents)
    data_dir = tmp_path / "data"
    small = synthetic_csv(tmp_path / "small.csv", 300, seed=1)
    big = synthetic_csv(tmp_path / "big.csv", BIG, seed=2)
    env = crash_env
    settings = Settings(data_dir=data_dir, database_url=env.get("TAGLOOP_DATABASE_URL"))
    first = json.loads(run(data_dir, "train", "crash", "--data", str(small), "--json", env=env))
    assert first["status"] == "TRAINED"

    job_id = json.loads(
        run(data_dir, "train", "crash", "--data", str(big), "--background", "--json", env=env)
    )["id"]
    worker = tagloop(data_dir, "worker", "--concurrency", "1", env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            state = job(data_dir, job_id, settings)
            if state["status"] == "IN_PROGRESS" and state["progress"] >= kill_at:
                break
            assert state["status"] in ("SUBMITTED", "IN_PROGRESS"), state
            assert time.monotonic() < deadline, "the job never reached the kill point"
            time.sleep(0.02)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert job(data_dir, job_id, settings)["status"] == "IN_PROGRESS"  # nobody finished it
    versions = {v["version"]: v for v in json.loads(run(data_dir, "versions", "crash", "--json", env=env))}
    assert versions["v1"]["status"] == "TRAINED"
    assert versions["v2"]["status"] == "TRAINING"
    served = run(data_dir, "classify", "crash", "alpha1 alpha2 common1", "--json", env=env)
    assert json.loads(served)["Classes"][0]["Name"] == "ALPHA"  # v1 still serves

    time.sleep(2.5)  # the dead worker's lease runs out
    deadline = time.monotonic() + 120
    while job(data_dir, job_id, settings)["status"] == "IN_PROGRESS":
        assert run(data_dir, "worker", "--once", env=env) == ""
        assert time.monotonic() < deadline, "the training did not complete after the crash"
    done = job(data_dir, job_id, settings)
    assert done["status"] == "COMPLETED", done
    assert done["attempts"] == 2
    versions = {v["version"]: v for v in json.loads(run(data_dir, "versions", "crash", "--json", env=env))}
    assert versions["v2"]["status"] == "TRAINED"
    assert versions["v1"]["status"] == "TRAINED"
    assert versions["v2"]["metrics"]["Accuracy"] > 0.9


def test_batch_survives_a_killed_worker(tmp_path, crash_env):
    data_dir = tmp_path / "data"
    run(
        data_dir,
        "train",
        "crash",
        "--data",
        str(synthetic_csv(tmp_path / "small.csv", 300, seed=1)),
        env=crash_env,
    )
    rng = random.Random(3)
    lines = [" ".join(rng.choices(SHARED, k=30) + rng.choices(WORDS["BETA"], k=3)) for _ in range(60_000)]
    source = tmp_path / "input.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    submitted = run(
        data_dir,
        "batch",
        "crash",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "out"),
        "--shard-documents",
        "2000",
        "--background",
        "--json",
        env=crash_env,
    )
    job_id = json.loads(submitted)["id"]
    settings = Settings(data_dir=data_dir, database_url=crash_env.get("TAGLOOP_DATABASE_URL"))
    worker = tagloop(data_dir, "worker", "--concurrency", "1", env=crash_env)
    try:
        deadline = time.monotonic() + 120
        while (state := job(data_dir, job_id, settings))["progress"] < 0.2:
            assert state["status"] in ("SUBMITTED", "IN_PROGRESS"), state
            assert time.monotonic() < deadline, "the batch never reached the kill point"
            time.sleep(0.02)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert job(data_dir, job_id, settings)["status"] == "IN_PROGRESS"
    time.sleep(2.5)  # the dead worker's leases run out
    deadline = time.monotonic() + 120
    while job(data_dir, job_id, settings)["status"] == "IN_PROGRESS":
        run(data_dir, "worker", "--once", env=crash_env)
        assert time.monotonic() < deadline, "the batch did not complete after the crash"
    done = job(data_dir, job_id, settings)
    assert done["status"] == "COMPLETED", done
    out = tmp_path / "out" / job_id
    seen = Counter()
    for part in out.glob("part-*.jsonl"):
        for line in part.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            seen[(record["File"], record["Line"])] += 1
    assert len(seen) == len(lines)
    assert set(seen.values()) == {1}
    assert json.loads((out / "manifest.json").read_text())["documents"] == len(lines)
