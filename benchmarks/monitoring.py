"""The monitoring report's query on a large prediction log: its plan and its time on SQLite and
PostgreSQL, next to a plain count of the same days' rows over every endpoint (same run).

    .venv/bin/python benchmarks/monitoring.py [--rows 1000000] [--postgres URL]

Logs ``--rows`` predictions of 50 endpoints over 30 days (one every 2.6 s, the endpoints taking
turns), then prints the plan of one endpoint's 8 days (what ``tagloop monitor E --days 7``
reads) and the time of 8 days and of the whole month. Uses a scratch PostgreSQL database
(dropped at the end) and a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from scratch import scratch_postgres
from tagloop.storage import migrate
from tagloop.storage.database import Database
from tagloop.storage.monitoring import MonitoringRepository

ENDPOINTS = 50


def load(database: Database, rows: int) -> float:
    started = time.perf_counter()
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.exec_driver_sql(
                "INSERT INTO predictions (id, endpoint, result, top_label, top_score, created_at) "
                f"SELECT md5(i::text), 'e' || mod(i, {ENDPOINTS}), '{{}}'::jsonb, 'L' || mod(i, 7), "
                "mod(i, 100) / 100.0, timestamptz '2026-11-01' + i * interval '2.592 seconds' "
                f"FROM generate_series(1, {rows}) i"
            )
            connection.exec_driver_sql("ANALYZE predictions")
        else:
            connection.exec_driver_sql(
                f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows}) "
                "INSERT INTO predictions (id, endpoint, result, top_label, top_score, created_at) "
                f"SELECT printf('%032d', i), 'e' || (i % {ENDPOINTS}), '{{}}', 'L' || (i % 7), "
                "(i % 100) / 100.0, "
                "strftime('%Y-%m-%d %H:%M:%f', '2026-11-01', '+' || (i * 2.592) || ' seconds') "
                "FROM s"
            )
            connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def measure(url: str, rows: int) -> None:
    database = Database(url)
    migrate.upgrade(database)
    print(f"{database.dialect}: {rows:,} predictions logged in {load(database, rows):.1f} s")
    week = (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    month = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    with database.reading() as session:
        repo = MonitoringRepository(session)
        query = repo.predictions_query("e7", *week)
        compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN" if database.dialect == "sqlite" else "EXPLAIN"
        for row in session.execute(text(f"{explain} {compiled}")):
            line = str(row[-1] if database.dialect == "sqlite" else row[0])
            if "Scan" in line or "SEARCH" in line or "SCAN" in line or "Index" in line:
                print("   plan:", line.strip()[:150])
        for name, (start, end) in (("8 days", week), ("the month", month)):
            started = time.perf_counter()
            found = repo.predictions("e7", start, end)
            took = time.perf_counter() - started
            print(f"   one endpoint, {name}: {sum(r[3] for r in found):,} predictions, {took * 1000:.0f} ms")
        started = time.perf_counter()
        count = session.execute(
            text("SELECT count(*) FROM predictions WHERE created_at >= :start AND created_at < :end"),
            {
                "start": week[0] if database.dialect == "postgresql" else "2026-11-23",
                "end": week[1] if database.dialect == "postgresql" else "2026-12-01",
            },
        ).scalar()
        took = time.perf_counter() - started
        print(
            f"   baseline: count(*) of the same 8 days, every endpoint ({count:,} rows): {took * 1000:.0f} ms"
        )
    database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with scratch_postgres("tagloop_bench_monitoring") as url:  # TAGLOOP_BENCH_POSTGRES_URL's server
        measure(url, args.rows)
    with tempfile.TemporaryDirectory() as folder:
        measure(f"sqlite:///{Path(folder) / 'bench.db'}", args.rows)


if __name__ == "__main__":
    main()
