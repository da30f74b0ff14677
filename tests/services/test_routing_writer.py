"""The review task writer (services/routing.py): group commit, failures answered as not
routed, the backlog bound, and the stand-in insert on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy import select

from tagloop.domain.predictions import Prediction
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask, Queue
from tagloop.domain.routing import Reason, RoutingPolicy
from tagloop.services import routing
from tagloop.services.routing import TaskWriter, draw, new_task_id, review_field
from tagloop.services.task_journal import decode, encode
from tagloop.services.task_store import insert_tasks, unframe
from tagloop.storage import migrate
from tagloop.storage.database import Database
from tagloop.storage.tables import ReviewTaskRow


def new_task(text: str = "vpn drops") -> NewTask:
    return NewTask(text=text, mode=Mode.MULTI_CLASS, choices=("A", "B"), reason="audit", id=new_task_id())


def test_requests_of_one_moment_share_a_transaction():
    batches: list[list[str]] = []
    gate = threading.Event()

    def write(tasks):
        gate.wait(10)  # the first batch holds the writer while the others queue up
        batches.append([task.text for task in tasks])

    writer = TaskWriter(write, max_rows=100, linger_seconds=0.001)

    async def main():
        first = asyncio.create_task(writer.stored([new_task("first")]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(writer.stored([new_task(f"t{n}"), new_task(f"u{n}")])) for n in range(30)]
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    writer.close()
    assert first is True and all(rest)
    assert batches[0] == ["first"]
    assert sum(len(batch) for batch in batches) == 61
    assert len(batches) <= 3  # the 60 waiting tasks went in one or two transactions, not 30


def test_max_rows_splits_batches():
    batches: list[int] = []
    gate = threading.Event()

    def write(tasks):
        gate.wait(10)
        batches.append(len(tasks))

    writer = TaskWriter(write, max_rows=10, linger_seconds=0.001)
    for _ in range(25):
        writer.send([new_task()])
    gate.set()
    writer.close()
    assert sum(batches) == 25 and max(batches) <= 10


def test_a_failed_write_answers_not_routed_and_spares_the_others():
    def write(tasks):
        if any(task.text == "bad" for task in tasks):
            raise RuntimeError("constraint violated")

    writer = TaskWriter(write, linger_seconds=0.02)

    async def main():
        return await asyncio.gather(
            writer.stored([new_task("good")]),
            writer.stored([new_task("bad")]),
            writer.stored([new_task("fine")]),
        )

    assert asyncio.run(main()) == [True, False, True]  # one bad request fails alone
    assert writer.stored_now([new_task("bad")]) is False
    assert writer.stored_now([new_task("ok")]) is True
    writer.close()


def test_a_backlog_over_the_bound_is_not_routed():
    gate = threading.Event()
    writer = TaskWriter(lambda tasks: gate.wait(10), max_pending=3)
    writer.send([new_task() for _ in range(4)])  # pending: 4, over the bound
    assert writer.stored_now([new_task()], timeout=5) is False  # refused at once, not queued
    gate.set()
    writer.close()


def test_review_field():
    task = new_task()
    assert review_field(task, True) == {"routed": True, "task_id": task.id, "reason": "audit"}
    assert review_field(task, False) == {"routed": False}
    assert review_field(None, True) == {"routed": False}
    assert 0 <= draw() < 1


def test_close_writes_what_is_queued(database_url):
    database = Database(database_url)
    migrate.upgrade(database)
    try:
        writer = TaskWriter(lambda tasks: insert_tasks(database, tasks), linger_seconds=0.5)
        tasks = [new_task(f"text {n}") for n in range(50)]
        for task in tasks:
            writer.send([task])
        writer.close()
        with database.reading() as session:
            rows = session.scalars(select(ReviewTaskRow)).all()
        assert sorted(row.id for row in rows) == sorted(str(task.id) for task in tasks)
        assert {(row.status, row.queue, row.answered, row.holders) for row in rows} == {
            ("InProgress", "review", 0, 0)
        }
    finally:
        database.dispose()


def test_stand_in_insert_fills_every_column(database_url):
    database = Database(database_url)
    migrate.upgrade(database)
    policy = RoutingPolicy(threshold=0.9, required=3, lease_seconds=60, lifetime_seconds=600)
    try:
        task = NewTask(
            text="vpn",
            mode=Mode.MULTI_LABEL,
            choices=("A", "B"),
            reason=Reason.FEEDBACK.value,
            prediction={"labels": ["A"], "scores": [0.4]},
            priority=0.8,
            uncertainty=0.6,
            queue=Queue.MODERATE,
            feedback={"correct": False},
            id=new_task_id(),
            **policy.task_settings(),
        )
        (task_id,) = insert_tasks(database, [task])
        with database.reading() as session:
            row = session.get_one(ReviewTaskRow, task_id)
            assert (row.mode, row.queue, row.required, row.lease_seconds) == (
                "MULTI_LABEL",
                "moderate",
                3,
                60,
            )
            assert (row.expires_at - row.created_at).total_seconds() == 600
            assert row.oldness == -row.created_at.timestamp()
            assert row.prediction == {"labels": ["A"], "scores": [0.4]} and row.feedback == {"correct": False}
    finally:
        database.dispose()


def test_prediction_without_scores_has_full_uncertainty():
    from tagloop.services.routing import routed_task

    class Model:
        labels = ("A", "B")

    class Serving:
        endpoint, classifier_id, version_id, model = "desk", 1, 2, Model()

    prediction = Prediction([], [], Mode.MULTI_LABEL)
    task = routed_task(Serving(), RoutingPolicy(audit=1.0), Reason.AUDIT, "t", prediction, None)  # type: ignore[arg-type]
    assert task.uncertainty == 1.0 and task.choices == ("A", "B") and task.id


class _Transport:
    """What the channel writes to the writer process, decoded: one list of tasks per message."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, list[str]]] = []

    def write(self, data: bytes) -> None:
        ((number, records),) = unframe(bytearray(data))
        self.messages.append((number, [task.text for task in decode(records)]))


def test_journalled_tasks_gather_for_a_while_and_a_waiting_request_sends_them_at_once(monkeypatch):
    monkeypatch.setattr(routing, "FLUSH_SECONDS", 3600.0)  # no timer fires in this test

    async def scenario() -> list[tuple[int, list[str]]]:
        loop = asyncio.get_running_loop()
        writer = TaskWriter(lambda tasks: None, max_rows=5)
        channel = routing._Channel(writer, None)  # type: ignore[arg-type]  # no process: never closed here
        transport = _Transport()
        channel.connection_made(transport)  # type: ignore[arg-type]
        for text in ("one", "two"):  # journalled: nobody waits for their commit
            channel.add(loop, 1, encode([new_task(text)]), None)
        await asyncio.sleep(0)  # a few loop turns: still gathering
        await asyncio.sleep(0)
        assert transport.messages == []
        waiting = loop.create_future()  # a request that awaits its task's commit
        channel.add(loop, 1, encode([new_task("three")]), waiting)
        await asyncio.sleep(0)  # sent at the end of this turn, with what had gathered
        assert transport.messages == [(1, ["one", "two", "three"])]
        for number in range(5):  # max_rows journalled tasks go without waiting for the timer
            channel.add(loop, 1, encode([new_task(f"bulk {number}")]), None)
        await asyncio.sleep(0)
        assert transport.messages[1:] == [(2, [f"bulk {number}" for number in range(5)])]
        assert channel.timer is None or channel.timer.cancelled()
        return transport.messages

    assert len(asyncio.run(scenario())) == 2
