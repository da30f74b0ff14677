"""Crash test: a real ``tagloop worker`` is SIGKILLed while it trains a dropped file's version.

The next worker resumes the same file: one version (trained again from the start), one
``inbox.processed`` event, one move to ``processed/``, an endpoint serving that version.
"""

from __future__ import annotations

import signal
import sqlite3
import time

from sqlalchemy import select
from tests.jobs.test_crash_recovery import run, synthetic_csv, tagloop

from tagloop.app import Tagloop
from tagloop.settings import Settings
from tagloop.storage.tables import InboxFileRow, ModelVersionRow

ENV = {
    "TAGLOOP_JOB_LEASE_SECONDS": "2",
    "TAGLOOP_LOOP_TICK_SECONDS": "0",
    "TAGLOOP_INBOX_POLL_SECONDS": "0",  # the test scans: the kill must land on a known file
}


def snapshot(settings: Settings) -> tuple[dict, dict | None, list[dict], list[dict]]:
    app = Tagloop(settings)
    try:
        with app.database.reading() as session:
            [row] = session.scalars(select(InboxFileRow)).all()
            versions = [
                {"name": v.name, "status": v.status} for v in session.scalars(select(ModelVersionRow)).all()
            ]
            file = {"state": row.state, "job_id": row.job_id, "moved_to": row.moved_to}
        job = app.jobs.show(file["job_id"]) if file["job_id"] else None
        return file, job, versions, [e["payload"] for e in app.loops.events(kind="inbox.processed")]
    finally:
        app.close()


def progress(data_dir) -> tuple[str, float]:
    """The file's state and its job's progress, read cheaply (a poll must not slow the worker)."""
    with sqlite3.connect(data_dir / "tagloop.db") as connection:
        return connection.execute(
            "SELECT f.state, j.progress FROM inbox_files f JOIN jobs j ON j.id = f.job_id"
        ).fetchone()


def test_a_dropped_file_is_processed_once_across_a_killed_worker(tmp_path):
    data_dir, drop = tmp_path / "data", tmp_path / "drop"
    drop.mkdir()
    settings = Settings(data_dir=data_dir)
    app = Tagloop(settings)
    try:
        app.inbox.add("crash", str(drop))
        synthetic_csv(drop / "big.csv", 8_000, seed=3)
        (drop / "big.csv.ready").touch()
        assert app.inbox.scan()["inboxes"][0]["claimed"] == ["big.csv"]
    finally:
        app.close()

    worker = tagloop(data_dir, "worker", "--concurrency", "1", env=ENV)
    try:
        deadline = time.monotonic() + 120
        while True:
            state, done = progress(data_dir)
            if state == "training" and done >= 0.1:  # its version trains
                break
            assert state in ("claimed", "training"), state
            assert time.monotonic() < deadline, "the inbox job never reached the kill point"
            time.sleep(0.02)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    file, job, versions, processed = snapshot(settings)
    assert file["state"] == "training" and versions == [{"name": "v1", "status": "TRAINING"}]
    assert processed == [] and (drop / "big.csv").exists()

    time.sleep(2.5)  # the dead worker's lease runs out
    deadline = time.monotonic() + 180
    while snapshot(settings)[0]["state"] not in ("processed", "failed"):
        run(data_dir, "worker", "--once", env=ENV)
        assert time.monotonic() < deadline, "the file was not processed after the crash"
    file, job, versions, processed = snapshot(settings)
    assert file["state"] == "processed" and file["moved_to"] == "processed/big.csv"
    assert versions == [{"name": "v1", "status": "TRAINED"}]  # one version for the file
    assert len(processed) == 1 and processed[0]["version"] == "v1"
    assert processed[0]["deployment"] == "created" and processed[0]["endpoint"] == "crash"
    assert job is not None and job["status"] == "COMPLETED" and job["attempts"] == 2
    assert sorted(p.name for p in drop.rglob("*") if p.is_file()) == ["big.csv"]
    assert (drop / "processed" / "big.csv").exists()
    app = Tagloop(settings)
    try:
        assert app.endpoints.serving("crash", refresh=True).version == "v1"
    finally:
        app.close()
