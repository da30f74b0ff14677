"""The console's read model on SQLite and PostgreSQL: what the classifiers page shows of each
classifier, one classifier's versions and data, and a version's test documents."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask
from tagloop.services.overview import source_name
from tagloop.services.training import TrainRequest
from tagloop.storage.events import EventRepository
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import EventRow, utcnow


def _task(classifier_id: int, **fields) -> NewTask:
    values = {"mode": Mode.MULTI_CLASS, "choices": ("A", "B"), "reason": "low_confidence", "priority": 1.0}
    values |= {"prediction": {"labels": ["A", "B"], "scores": [0.6, 0.4]}, "uncertainty": 0.4}
    return NewTask(text="some text", classifier_id=classifier_id, **(values | fields))


def test_cards_say_what_serves_the_queue_the_drift_and_stay_empty_without_classifiers(
    make_tagloop, database_url, tickets, tickets_csv
):
    tagloop = make_tagloop(database_url=database_url)
    assert tagloop.overview.classifiers() == []
    tagloop.training.train(TrainRequest("desk", str(tickets_csv)))
    tagloop.training.train(TrainRequest("desk", str(tickets_csv)))
    tagloop.endpoints.create("desk-live", "desk")  # follows: v2 becomes the champion
    tagloop.endpoints.create("desk-old", "desk", version="v1")
    with tagloop.database.transaction() as session:
        desk = ClassifierRepository(session).get("desk").id
        other = ClassifierRepository(session).add("empty", Mode.MULTI_LABEL.value, "|").id
        events = EventRepository(session)
        events.add("drift.detected", {}, classifier_id=desk, endpoint="desk-live")
        events.add("drift.detected", {}, classifier_id=other, endpoint="gone")
    with tagloop.database.transaction() as session:  # the other's drift is too old to flag
        session.execute(
            update(EventRow)
            .where(EventRow.classifier_id == other)
            .values(created_at=utcnow() - timedelta(days=8))
        )
    tagloop.review.add_tasks([_task(desk), _task(desk), _task(other)])

    cards = {card.name: card for card in tagloop.overview.classifiers()}
    desk_card, empty = cards["desk"], cards["empty"]
    assert (desk_card.serving, desk_card.champion, desk_card.versions) == ("v2", "v2", 2)
    assert sum(desk_card.label_counts.values()) > 300 and "NETWORK" in desk_card.label_counts
    assert [(e.name, e.version, e.follows) for e in desk_card.endpoints] == [
        ("desk-live", "v2", True),
        ("desk-old", "v1", False),
    ]
    assert (desk_card.review_queue, empty.review_queue) == (2, 1)
    assert desk_card.drift_at is not None and empty.drift_at is None
    assert desk_card.last_iteration is None
    assert (empty.serving, empty.label_counts, empty.endpoints) == (None, {}, [])

    detail = tagloop.overview.classifier("desk")
    assert [v["version"] for v in detail.versions] == ["v2", "v1"]  # newest first
    assert detail.versions[0]["endpoints"] == ["desk-live"] and detail.versions[1]["endpoints"] == [
        "desk-old"
    ]
    imported = detail.documents["import"]
    assert set(imported) == {"train", "test"} and imported["train"] + imported["test"] == 2 * len(tickets)
    assert [p["to"] for p in detail.promotions] == ["v2"]
    assert [(s["name"], s["documents"]) for s in detail.sources] == [("tickets.csv", len(tickets))] * 2


def test_a_source_shows_its_files_name_only():
    assert source_name("/srv/data/uploads/ab12/tickets.csv") == "tickets.csv"
    assert source_name("s3://bucket/folder/train.jsonl.gz") == "train.jsonl.gz"
    assert source_name("C:\\data\\x.csv") == "x.csv"
    assert source_name("version v1") == "version v1"


def test_test_documents_match_the_stored_confusion_matrix(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    tagloop.training.train(TrainRequest("desk", str(tickets_csv)))
    version = tagloop.catalog.version("desk", "v1")
    documents = tagloop.overview.test_documents("desk", "v1")
    assert len(documents) == version["documents"]["test"]
    labels = version["confusion_matrix"]["labels"]
    for i, actual in enumerate(labels):
        for j, predicted in enumerate(labels):
            counted = sum(
                1 for d in documents if d.actual[:1] == (actual,) and d.predicted[:1] == (predicted,)
            )
            assert counted == version["confusion_matrix"]["confusion_matrix"][i][j], (actual, predicted)
    assert all(0.0 < d.score <= 1.0 for d in documents)
    assert tagloop.overview.test_documents("desk", "v1") is documents  # kept for the next cell
