"""Review queue: answer → next task, server time, with 100,000 pending tasks.

Seeds ``--tasks`` pending review tasks (bulk inserts; answers required 1-3, random
uncertainty, a tenth of them at a higher priority) plus ``--history`` completed tasks with
answers by other reviewers, then times ``ReviewService.answer`` followed by
``ReviewService.next_task`` (what the review page does per key press) for ``--answers`` rounds
of one reviewer, and the same with ``--reviewers`` answering at once. Baseline in the same
run: a bare ``SELECT id FROM review_tasks WHERE queue = 'review' ORDER BY priority DESC,
uncertainty DESC LIMIT 1`` on the same table and connection pool. Target: p95 ≤ 50 ms on
SQLite and on PostgreSQL (TAGLOOP_BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/test; a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import event, insert, text

from scratch import scratch_postgres
from tagloop.domain.records import Mode
from tagloop.services.review import ReviewService
from tagloop.storage import migrate
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import ReviewAnswerRow, ReviewTaskRow, utcnow

CHOICES = ["ACCESS", "BILLING", "EMAIL", "HARDWARE", "NETWORK", "SOFTWARE"]
CHUNK = 10_000


def seed(database: Database, tasks: int, history: int, rng: random.Random) -> int:
    with database.transaction() as session:
        classifier_id = ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id
    now = utcnow()

    def task(i: int, done: bool) -> dict[str, object]:
        created = now - timedelta(seconds=tasks + history - i)
        best = rng.uniform(0.2, 0.9)
        labels = rng.sample(CHOICES, 3)
        return {
            "id": str(uuid.uuid4()),
            "classifier_id": classifier_id,
            "text": f"ticket {i}: the printer on floor {i % 7} does not print " * 3,
            "mode": Mode.MULTI_CLASS.value,
            "choices": CHOICES,
            "prediction": {"labels": labels, "scores": [best, (1 - best) / 2, (1 - best) / 4]},
            "reason": "low_confidence",
            "priority": 1.0 if rng.random() < 0.1 else 0.0,
            "uncertainty": 1 - best,
            "oldness": -created.timestamp(),
            "required": 1 if done else rng.choice((1, 2, 3)),
            "answered": 1 if done else 0,
            "holders": 1 if done else 0,
            "lease_seconds": 300,
            "status": "Completed" if done else "InProgress",
            "queue": None if done else "review",
            "final_labels": labels[:1] if done else None,
            "created_at": created,
        }

    for start in range(0, tasks + history, CHUNK):
        rows = [task(i, i < history) for i in range(start, min(start + CHUNK, tasks + history))]
        answers = [
            {
                "task_id": row["id"],
                "reviewer": f"old{rng.randrange(20)}",
                "role": "reviewer",
                "status": "answered",
                "labels": row["final_labels"],
                "accepted": True,
                "time_spent": 3.0,
                "leased_at": now,
                "answered_at": now,
            }
            for row in rows
            if row["status"] == "Completed"
        ]
        with database.transaction() as session:
            session.execute(insert(ReviewTaskRow), rows)
            if answers:
                session.execute(insert(ReviewAnswerRow), answers)
    if database.dialect == "postgresql":
        with database.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return classifier_id


def percentiles(times: list[float]) -> str:
    ordered = sorted(times)
    p50 = ordered[len(ordered) // 2]
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {p50 * 1e3:6.2f} ms  p95 {p95 * 1e3:6.2f} ms  (n={len(ordered)})"


def baseline(database: Database, rounds: int) -> list[float]:
    query = text(
        "SELECT id FROM review_tasks WHERE queue = 'review' ORDER BY priority DESC, uncertainty DESC LIMIT 1"
    )
    times = []
    with database.engine.connect() as connection:
        for _ in range(rounds):
            started = time.perf_counter()
            connection.execute(query).scalar()
            times.append(time.perf_counter() - started)
    return times


def reviewing(review: ReviewService, reviewer: str, rounds: int, times: list[float]) -> None:
    rng = random.Random(reviewer)
    view = review.next_task(reviewer)
    for _ in range(rounds):
        assert view is not None
        started = time.perf_counter()
        review.answer(view.id, reviewer, labels=[rng.choice(CHOICES)], seconds=2.0)
        view = review.next_task(reviewer)
        times.append(time.perf_counter() - started)


def run(name: str, url: str, args: argparse.Namespace) -> None:
    database = Database(url)
    migrate.upgrade(database)
    started = time.perf_counter()
    seed(database, args.tasks, args.history, random.Random(13))
    print(
        f"{name}: seeded {args.tasks:,} pending + {args.history:,} completed tasks in "
        f"{time.perf_counter() - started:.1f} s"
    )
    review = ReviewService(database)
    bare = percentiles(baseline(database, args.answers))
    print(f"  baseline  bare SELECT ... ORDER BY ... LIMIT 1      {bare}")
    one: list[float] = []
    statements = [0]

    def count(*_: object) -> None:
        statements[0] += 1

    event.listen(database.engine, "before_cursor_execute", count)
    reviewing(review, "solo", args.answers, one)
    event.remove(database.engine, "before_cursor_execute", count)
    print(f"  tagloop   answer + next_task, 1 reviewer         {percentiles(one)}")
    print(f"            SQL statements per answer + next_task  {statements[0] / args.answers:.2f}")
    together: list[float] = []
    threads = [
        threading.Thread(target=reviewing, args=(review, f"r{n}", args.answers // args.reviewers, together))
        for n in range(args.reviewers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"  tagloop   answer + next_task, {args.reviewers} reviewers at once {percentiles(together)}")
    print(
        f"  baseline  again after the runs                   {percentiles(baseline(database, args.answers))}"
    )
    database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000, help="pending tasks")
    parser.add_argument("--history", type=int, default=20_000, help="completed tasks with an answer")
    parser.add_argument("--answers", type=int, default=400, help="answer → next rounds measured")
    parser.add_argument("--reviewers", type=int, default=4, help="reviewers of the concurrent run")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    for backend in args.backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                run("SQLite", f"sqlite:///{tmp}/tagloop.db", args)
        else:
            with scratch_postgres() as url:
                run("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
