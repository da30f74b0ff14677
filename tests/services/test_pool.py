"""The unlabelled pool (services/pool.py) on SQLite and on the real PostgreSQL: adding files and
documents with dedup by text hash (within a file, against the pool, against verified
documents), rejected rows by line, count/list/clear, and feeding the pool from an endpoint's
logged predictions (the share by prediction id, never twice, also with several ticks at once)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tagloop.domain.formats import FormatSpec
from tagloop.domain.limits import Limits
from tagloop.domain.loop import text_hash
from tagloop.domain.pool import sampled
from tagloop.domain.records import Mode
from tagloop.errors import DatasetInvalid, InvalidRequest, LocationNotAllowed, NotFound
from tagloop.services.pool import PoolService
from tagloop.services.training import TrainRequest
from tagloop.storage.repositories import ClassifierRepository, DocumentRepository
from tagloop.storage.tables import DocumentRow, EndpointRow, EventRow, PredictionRow, utcnow


@pytest.fixture
def store(make_tagloop, database_url):
    return make_tagloop(database_url=database_url)


@pytest.fixture
def desk(store) -> int:
    with store.database.transaction() as session:
        return ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id


def pool_rows(store, classifier_id: int) -> list[DocumentRow]:
    with store.database.reading() as session:
        query = select(DocumentRow).where(DocumentRow.classifier_id == classifier_id).order_by(DocumentRow.id)
        return list(session.scalars(query))


def test_a_file_is_pooled_without_its_labels_and_repeats_are_reported_by_line(store, desk, write_csv):
    path = write_csv(
        [
            ["NETWORK", "VPN drops every ten minutes"],
            ["EMAIL", "Outlook will not start"],
            ["EMAIL", "  outlook   WILL not start "],  # the same text: whitespace and case do not count
            ["", "   "],  # empty text
            ["HARDWARE", "monitor flickers"],
        ]
    )
    report = store.pool.add("desk", str(path))
    assert (report["added"], report["duplicates"], report["rejected"]) == (3, 1, 1)
    assert report["duplicate_rows"] == [{"line": 3, "of": "line 2"}]
    assert report["rejected_rows"] == [{"line": 4, "reason": "empty text"}]
    assert report["pool"] == {"waiting": 3, "picked": 0, "documents": 3, "by_origin": {"import": 3}}
    rows = pool_rows(store, desk)
    assert [(r.text, r.labels, r.split, r.origin, r.dataset_id, r.line) for r in rows] == [
        ("VPN drops every ten minutes", [], "pool", "import", None, 1),
        ("Outlook will not start", [], "pool", "import", None, 2),
        ("monitor flickers", [], "pool", "import", None, 5),
    ]
    assert all(r.text_hash == text_hash(r.text) and r.pool_task_id is None for r in rows)
    again = store.pool.add("desk", str(path))  # the whole file again: nothing new
    assert (again["added"], again["duplicates"]) == (0, 4)
    assert [row["of"] for row in again["duplicate_rows"]] == ["pool", "pool", "line 2", "pool"]
    assert store.pool.count("desk")["waiting"] == 3


def test_labels_are_kept_as_hints_when_asked_and_checked_against_the_mode(store, desk, tmp_path):
    path = tmp_path / "pool.jsonl"
    lines = [
        {"text": "printer jams on tray 2", "labels": ["HARDWARE"]},
        {"text": "no label here"},
        {"text": "two labels", "labels": ["A", "B"]},  # multi-class: refused, with its line
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    report = store.pool.add("desk", str(path), FormatSpec.infer(str(path)), keep_labels=True)
    assert (report["added"], report["rejected"]) == (2, 1)
    assert report["rejected_rows"][0]["line"] == 3 and "multi-class" in report["rejected_rows"][0]["reason"]
    assert [r.labels for r in pool_rows(store, desk)] == [["HARDWARE"], []]


def test_verified_texts_are_not_pooled(store, desk, write_csv):
    with store.database.transaction() as session:
        DocumentRepository(session).add_many(
            [
                {
                    "classifier_id": desk,
                    "dataset_id": None,
                    "text": "The Printer is on fire",
                    "labels": ["HARDWARE"],
                    "origin": "review",
                    "split": "train",
                    "line": None,
                    "text_hash": text_hash("The Printer is on fire"),
                }
            ]
        )
    report = store.pool.add("desk", str(write_csv([["", "the printer is on  fire"], ["", "new text"]])))
    assert report["added"] == 1 and report["duplicate_rows"] == [{"line": 1, "of": "verified"}]


def test_a_file_of_only_bad_rows_is_refused_and_adds_nothing(store, desk, write_csv):
    with pytest.raises(DatasetInvalid) as caught:
        store.pool.add("desk", str(write_csv([["X", " "], ["Y", ""]])))
    assert [issue.line for issue in caught.value.issues] == [1, 2]
    assert pool_rows(store, desk) == []
    with pytest.raises(InvalidRequest, match="no such file"):
        store.pool.add("desk", "/nonexistent/pool.csv")
    with pytest.raises(NotFound):
        store.pool.add("nobody", str(write_csv([["", "text"]])))


def test_network_callers_are_held_to_the_allowed_data_locations(store, desk, write_csv):
    path = write_csv([["", "a text"]])
    with pytest.raises(LocationNotAllowed):
        store.pool.add("desk", str(path), from_network=True)
    assert pool_rows(store, desk) == []


def test_documents_from_the_api_are_checked_one_by_one(store, desk):
    report = store.pool.add_documents(
        "desk",
        [
            {"text": "keyboard missing keys", "labels": ["HARDWARE"]},
            "a plain string is a text",
            {"text": 5},
            {"text": "x", "extra": 1},
            {"text": "nul \x00 inside"},
            {"text": "labels wrong", "labels": "HARDWARE"},
            {"text": "KEYBOARD  missing keys"},
        ],
        keep_labels=True,
    )
    assert report["added"] == 2 and report["duplicate_rows"] == [{"line": 7, "of": "line 1"}]
    assert [row["line"] for row in report["rejected_rows"]] == [3, 4, 5, 6]
    with pytest.raises(InvalidRequest, match="at most"):
        store.pool.add_documents("desk", ["t"] * 1_001)
    with pytest.raises(InvalidRequest):
        store.pool.add_documents("desk", [])


def test_list_pages_and_clear_keeps_picked_documents(store, desk):
    store.pool.add_documents("desk", [f"text number {i}" for i in range(5)])
    first = store.pool.list("desk", limit=2)
    assert [d["text"] for d in first["documents"]] == ["text number 0", "text number 1"]
    second = store.pool.list("desk", limit=2, after=first["next_after"])
    assert [d["text"] for d in second["documents"]] == ["text number 2", "text number 3"]
    last = store.pool.list("desk", limit=2, after=second["next_after"])
    assert [d["text"] for d in last["documents"]] == ["text number 4"] and last["next_after"] is None
    with pytest.raises(InvalidRequest):
        store.pool.list("desk", limit=0)
    cleared = store.pool.clear("desk")
    assert cleared["removed"] == 5 and cleared["pool"]["documents"] == 0


# --- logged predictions --------------------------------------------------------------------


@pytest.fixture
def endpoint(store, tickets_csv) -> dict:
    trained = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    created = store.endpoints.create("desk-ep", "desk")
    store.queue.run_now(created["job_id"])
    return trained


def log_predictions(
    store, version_name: str, texts: list[str | None], endpoint: str = "desk-ep"
) -> list[str]:
    from tagloop.services.prediction_log import new_prediction_id
    from tagloop.storage.tables import ModelVersionRow

    with store.database.transaction() as session:
        version_id = session.scalar(select(ModelVersionRow.id).where(ModelVersionRow.name == version_name))
        ids = []
        for text in texts:
            prediction_id = new_prediction_id()
            ids.append(prediction_id)
            session.add(
                PredictionRow(
                    id=prediction_id,
                    endpoint=endpoint,
                    version_id=version_id,
                    text=text,
                    result={"classes": []},
                    top_label="NETWORK",
                    top_score=0.5,
                    created_at=utcnow(),
                )
            )
    return ids


def sampler(store, **options) -> PoolService:
    return PoolService(store.database, Limits(), store.data_locations, lag_seconds=0, **options)


def test_an_endpoint_feeds_the_sampled_share_of_its_predictions_once(store, endpoint):
    log_predictions(store, endpoint["version"], ["logged before the rate was set"])
    service = sampler(store)
    assert store.endpoints.show("desk-ep")["pool_rate"] == 0.0
    assert service.set_rate("desk-ep", 0.5)["pool_rate"] == 0.5
    assert store.endpoints.show("desk-ep")["pool_rate"] == 0.5
    texts = [f"logged text {i}" for i in range(60)]
    ids = log_predictions(store, endpoint["version"], [*texts, None])  # one without its text
    figures = service.sample_predictions()["endpoints"]["desk-ep"]
    expected = {f"logged text {i}" for i, pid in enumerate(ids[:60]) if sampled(pid, 0.5)}
    assert 0 < len(expected) < 60  # the share is a share
    assert figures == {"examined": 61, "added": len(expected), "duplicates": 0}
    with store.database.reading() as session:
        pooled = session.execute(
            select(DocumentRow.text, DocumentRow.origin).where(DocumentRow.split == "pool")
        )
        assert {text for text, origin in pooled if origin == "prediction"} == expected
    # a second tick finds nothing new; new predictions are fed on the next
    service.tick()
    assert store.pool.count("desk")["waiting"] == len(expected)
    more = log_predictions(store, endpoint["version"], ["one more", "and another"])
    added = service.sample_predictions()["endpoints"]["desk-ep"]["added"]
    assert added == sum(sampled(pid, 0.5) for pid in more)
    with store.database.reading() as session:  # the watermark is the endpoint's, not an event per pass
        row = session.scalars(select(EndpointRow).where(EndpointRow.name == "desk-ep")).one()
        newest = session.scalars(
            select(PredictionRow.id).order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
        ).first()
        assert newest in more and row.pool_through_id == newest
        kinds = [event.kind for event in session.scalars(select(EventRow))]
        assert kinds.count("pool.rate") == 1 and not [
            kind for kind in kinds if kind.startswith("pool.") and kind != "pool.rate"
        ]


def test_sampling_waits_for_young_predictions_and_a_rate_of_zero_stops_it(store, endpoint):
    service = PoolService(store.database, Limits(), store.data_locations, lag_seconds=3_600)
    service.set_rate("desk-ep", 1.0)
    log_predictions(store, endpoint["version"], ["too young to be sampled"])
    assert service.sample_predictions()["endpoints"]["desk-ep"]["examined"] == 0
    later = PoolService(
        store.database,
        Limits(),
        store.data_locations,
        clock=lambda: utcnow() + timedelta(hours=2),
        lag_seconds=3_600,
    )
    assert later.sample_predictions()["endpoints"]["desk-ep"]["added"] == 1
    service.set_rate("desk-ep", 0)
    assert service.sample_predictions() == {"endpoints": {}}
    with pytest.raises(InvalidRequest, match="pool_rate"):
        service.set_rate("desk-ep", 1.5)
    with pytest.raises(InvalidRequest, match="pool_rate"):
        service.set_rate("desk-ep", float("nan"))
    with pytest.raises(NotFound):
        service.set_rate("nowhere", 0.1)


def test_several_processes_ticking_at_once_feed_each_prediction_once(store, endpoint):
    sampler(store).set_rate("desk-ep", 1.0)
    log_predictions(store, endpoint["version"], [f"concurrent text {i}" for i in range(200)])
    services = [sampler(store, sample_batch=37) for _ in range(4)]
    errors: list[BaseException] = []

    def tick(service: PoolService) -> None:
        try:
            for _ in range(4):
                service.sample_predictions()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    while sampler(store, sample_batch=37).sample_predictions()["endpoints"]["desk-ep"]["examined"]:
        pass
    with store.database.reading() as session:
        texts = list(session.scalars(select(DocumentRow.text).where(DocumentRow.origin == "prediction")))
        assert sorted(texts) == sorted(f"concurrent text {i}" for i in range(200))
        assert (
            session.scalar(select(func.count()).select_from(DocumentRow).where(DocumentRow.split == "pool"))
            == 200
        )
