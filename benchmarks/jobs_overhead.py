"""Job overhead: an empty job from enqueue to COMPLETED, on each queue adapter.

Prints median and p90 over N jobs (enqueue in a committed transaction → worker picks it up →
status COMPLETED seen by the caller). Target: < 50 ms median on the local adapter (SQLite).
PostgreSQL rows need the local server (TAGLOOP_BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/test); a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from scratch import scratch_postgres
from tagloop.app import Tagloop
from tagloop.jobs.port import JobKindBase
from tagloop.settings import Settings
from tagloop.storage import migrate


class NoopJob(JobKindBase):
    kind = "noop"

    def run(self, context: Any, payload: dict[str, Any]) -> None:
        return None

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        return None

    def children_finished(self, payload: dict[str, Any], results: list[Any]) -> dict[str, Any]:
        return {}


def measure(settings: Settings, jobs: int) -> list[float]:
    app = Tagloop(settings, check_schema=False)
    migrate.upgrade(app.database)  # what `tagloop db upgrade` does
    ensure = getattr(app.queue, "ensure_schema", None)
    if ensure is not None:
        ensure()
    app.queue.register(NoopJob())
    app.start_workers()
    try:
        for _ in range(5):  # warm up connections and the worker
            with app.database.transaction() as session:
                warm = app.queue.enqueue(session, "noop", {})
            app.queue.wait(warm, timeout=30)
        times = []
        for _ in range(jobs):
            started = time.perf_counter()
            with app.database.transaction() as session:
                job_id = app.queue.enqueue(session, "noop", {})
            status = app.queue.wait(job_id, timeout=30)
            times.append(time.perf_counter() - started)
            assert status == "COMPLETED", status
        return times
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with scratch_postgres() as postgres, tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("local", "SQLite", Settings(data_dir=Path(tmp) / "a")),
            ("local", "PostgreSQL", Settings(data_dir=Path(tmp) / "b", database_url=postgres)),
            (
                "procrastinate",
                "PostgreSQL",
                Settings(data_dir=Path(tmp) / "c", database_url=postgres, jobs="procrastinate"),
            ),
        ]
        for adapter, database, settings in cases:
            times = measure(settings, args.jobs)
            deciles = statistics.quantiles(times, n=10)
            rows.append((adapter, database, statistics.median(times), deciles[-1]))
    print(f"empty job, enqueue → COMPLETED, {args.jobs} jobs each\n")
    print("| adapter | database | median ms | p90 ms |")
    print("|---|---|---:|---:|")
    for adapter, database, median, p90 in rows:
        print(f"| {adapter} | {database} | {median * 1000:.1f} | {p90 * 1000:.1f} |")
    local = rows[0][2] * 1000
    verdict = "PASS" if local < 50 else "FAIL"
    print(f"\ntarget: local adapter (SQLite) median < 50 ms: {local:.1f} ms → {verdict}")


if __name__ == "__main__":
    main()
