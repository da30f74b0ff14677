"""Crash test: a real worker process is SIGKILLed while an iteration trains its challenger.

The next worker resumes the same iteration (the same challenger version, trained again from
the start), it completes with a decision, and the champion serves the whole time.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from tests.jobs.test_crash_recovery import BIG, close_readers, reading_app, run, synthetic_csv, tagloop

from tagloop.settings import Settings


@pytest.fixture(params=["local", "procrastinate"])
def crash_env(request, tmp_path) -> dict[str, str]:
    env = {"TAGLOOP_JOB_LEASE_SECONDS": "2", "TAGLOOP_JOBS": request.param, "TAGLOOP_LOOP_TICK_SECONDS": "0"}
    if request.param == "procrastinate":
        env["TAGLOOP_DATABASE_URL"] = request.getfixturevalue("procrastinate_db")
    return env


__all__ = ["close_readers"]  # the autouse fixture closing the apps of ``reading_app``


def iteration(settings: Settings, name: str) -> dict:
    return reading_app(settings).iterations.get("crash", name)


def test_an_iteration_survives_a_killed_worker(tmp_path, crash_env):
    data_dir = tmp_path / "data"
    env = crash_env
    settings = Settings(data_dir=data_dir, database_url=env.get("TAGLOOP_DATABASE_URL"))
    big = synthetic_csv(tmp_path / "big.csv", BIG, seed=2)
    assert (
        json.loads(run(data_dir, "train", "crash", "--data", str(big), "--json", env=env))["status"]
        == "TRAINED"
    )
    run(data_dir, "versions", "promote", "crash", "v1", env=env)
    started = json.loads(run(data_dir, "iterate", "crash", "--no-wait", "--json", env=env))
    assert started["status"] == "TRAINING"
    worker = tagloop(data_dir, "worker", "--concurrency", "1", env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            state = iteration(settings, started["iteration"])
            job = reading_app(settings).jobs.show(started["job_id"])
            if job["status"] == "IN_PROGRESS" and job["progress"] >= 0.1:  # the challenger trains
                break
            assert state["status"] == "TRAINING", state
            assert time.monotonic() < deadline, "the iteration never reached the kill point"
            time.sleep(0.02)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    killed = iteration(settings, started["iteration"])
    assert (killed["status"], killed["challenger"]) == ("TRAINING", "v2")
    versions = {v["version"]: v for v in json.loads(run(data_dir, "versions", "crash", "--json", env=env))}
    assert versions["v2"]["status"] == "TRAINING"
    assert json.loads(run(data_dir, "loop", "show", "crash", "--json", env=env))["champion"] == "v1"

    time.sleep(2.5)  # the dead worker's lease runs out
    deadline = time.monotonic() + 180
    while iteration(settings, started["iteration"])["status"] not in ("COMPLETED", "FAILED"):
        run(data_dir, "worker", "--once", env=env)
        assert time.monotonic() < deadline, "the iteration did not complete after the crash"
    done = iteration(settings, started["iteration"])
    assert done["status"] == "COMPLETED", done
    assert done["challenger"] == "v2" and done["decision"] in ("promoted", "kept")
    assert done["metrics"]["champion"] is not None and done["metrics"]["challenger"] is not None
    versions = {v["version"]: v for v in json.loads(run(data_dir, "versions", "crash", "--json", env=env))}
    assert set(versions) == {"v1", "v2"} and versions["v2"]["status"] == "TRAINED"  # no second challenger
    assert reading_app(settings).jobs.show(started["job_id"])["attempts"] == 2
