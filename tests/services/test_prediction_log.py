"""The prediction log: every recorded prediction is written, from a thread or a process."""

from __future__ import annotations

import multiprocessing
import threading
import uuid

import pytest
from sqlalchemy import select

from tagloop.domain import comprehend
from tagloop.domain.predictions import Prediction
from tagloop.domain.records import Mode
from tagloop.services.prediction_log import PredictionLog, new_prediction_id
from tagloop.services.training import TrainRequest
from tagloop.storage.tables import ModelVersionRow, PredictionRow


def test_ids_are_uuid7_in_time_order():
    first = new_prediction_id()
    ids = [new_prediction_id() for _ in range(1_000)]
    assert all(len(i) == 32 and uuid.UUID(i).version == 7 for i in ids)
    assert len(set(ids)) == len(ids)
    assert uuid.UUID(first).variant == uuid.RFC_4122
    assert first[:12] <= min(ids)[:12]  # the leading 48 bits are milliseconds


def _ids_from_a_forked_child(connection) -> None:
    connection.send([new_prediction_id() for _ in range(100)])


def test_a_forked_process_draws_other_ids_than_its_parent():
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_ids_from_a_forked_child, args=(sender,))
    child.start()
    theirs = receiver.recv()
    child.join()
    ours = [new_prediction_id() for _ in range(100)]
    assert not {i[13:] for i in ours} & {i[13:] for i in theirs}  # random parts differ


@pytest.fixture
def desk(make_tagloop, database_url, tickets_csv):
    """A trained classifier on each database, and the id of its version."""
    tagloop = make_tagloop(database_url=database_url)
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with tagloop.database.reading() as session:
        return tagloop, session.scalar(select(ModelVersionRow.id))


@pytest.fixture(params=["thread", "process"])
def make_log(request, desk):
    """``make_log(flush_seconds)``: a prediction log writing from a thread or from a process."""

    def make(flush_seconds: float) -> PredictionLog:
        log = PredictionLog(desk[0].database, flush_seconds=flush_seconds)
        if request.param == "process":
            log.use_process()
        return log

    return make


def test_every_recorded_prediction_is_written(desk, make_log):
    tagloop, version_id = desk
    log = make_log(0.05)
    _, model = tagloop.predictions.model("desk")
    texts = [f"printer {i} is jammed" for i in range(300)]
    results = list(tagloop.predictions.classify(model, texts))
    recorded: list[str] = []

    def record(part: range) -> None:
        for i in part:
            prediction_id = log.record("desk", version_id, texts[i], results[i])
            assert prediction_id is not None
            recorded.append(prediction_id)

    threads = [threading.Thread(target=record, args=(range(k, 300, 3),)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    with tagloop.database.reading() as session:
        rows = {row.id: row for row in session.scalars(select(PredictionRow))}
    assert set(rows) == set(recorded)
    for i, text in enumerate(texts[:5]):
        (row,) = [r for r in rows.values() if r.text == text]
        assert row.endpoint == "desk" and row.version_id == version_id
        assert row.result == comprehend.result(results[i])  # as ClassifyDocument answers
        assert row.top_score == results[i].scores[0]
        assert row.created_at.tzinfo is not None


def test_a_disabled_log_records_nothing(make_tagloop):
    tagloop = make_tagloop()
    log = PredictionLog(tagloop.database, enabled=False)
    assert log.record("desk", 1, "text", Prediction([], [], Mode.MULTI_CLASS)) is None
    log.close()


def test_a_row_that_cannot_be_written_does_not_lose_the_others(desk, make_log):
    tagloop, version_id = desk
    log = make_log(0.2)
    result = Prediction(["HARDWARE"], [1.0], Mode.MULTI_CLASS)
    kept = [log.record("desk", version_id, f"text {i}", result) for i in range(3)]
    log.record("desk", 999_999, "a version that does not exist", result)  # breaks the batch
    kept += [log.record("desk", version_id, f"text {i}", result) for i in range(3, 6)]
    log.close()
    with tagloop.database.reading() as session:
        written = set(session.scalars(select(PredictionRow.id)))
    assert written == set(kept)
