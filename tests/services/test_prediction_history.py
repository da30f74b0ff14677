"""Reading the prediction log (pages, filters) and deleting old predictions, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import func, select

from tagloop.errors import InvalidRequest
from tagloop.services import prediction_history
from tagloop.services.prediction_history import PredictionHistory, parse_since
from tagloop.services.prediction_log import PredictionLog, new_prediction_id
from tagloop.services.training import TrainRequest
from tagloop.storage.repositories import PredictionRepository
from tagloop.storage.tables import ModelVersionRow, PredictionRow, utcnow

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def desk(make_tagloop, database_url, tickets_csv):
    """A trained classifier on each database, and the id of its version."""
    tagloop = make_tagloop(database_url=database_url)
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with tagloop.database.reading() as session:
        return tagloop, session.scalar(select(ModelVersionRow.id))


def log_rows(tagloop, version_id: int, rows: list[tuple[str, str, datetime]]) -> list[str]:
    """Insert logged predictions (endpoint, best label, when) as the log's writer does; their ids."""
    ids, batch = [], []
    for endpoint, label, created_at in rows:
        prediction_id = new_prediction_id()
        result = {"Classes": [{"Name": label, "Score": 0.75}, {"Name": "OTHER", "Score": 0.25}]}
        batch.append(
            {
                "id": prediction_id,
                "endpoint": endpoint,
                "version_id": version_id,
                "text": f"text of {prediction_id}",
                "result": orjson.dumps(result).decode(),
                "top_label": label,
                "top_score": 0.75,
                "created_at": created_at,
            }
        )
        ids.append(prediction_id)
    with tagloop.database.transaction() as session:
        PredictionRepository(session).add_many(batch)
    return ids


def count(tagloop) -> int:
    with tagloop.database.reading() as session:
        return session.scalar(select(func.count()).select_from(PredictionRow))


def test_pages_are_newest_first_and_not_shifted_by_new_predictions(desk):
    tagloop, version_id = desk
    times = [NOW - timedelta(minutes=n) for n in range(25)]
    ids = log_rows(tagloop, version_id, [("desk", "NETWORK", when) for when in times])
    history = tagloop.prediction_history
    first, cursor = history.page(limit=10)
    assert [item["id"] for item in first] == ids[:10]
    assert first[0] == {
        "id": ids[0],
        "endpoint": "desk",
        "classifier": "desk",
        "version": "v1",
        "created_at": NOW.isoformat(),
        "label": "NETWORK",
        "score": 0.75,
        "classes": [{"name": "NETWORK", "score": 0.75}, {"name": "OTHER", "score": 0.25}],
        "text": f"text of {ids[0]}",
    }
    log_rows(tagloop, version_id, [("desk", "NETWORK", NOW + timedelta(minutes=1))])  # logged meanwhile
    second, cursor = history.page(limit=10, cursor=cursor)
    third, last = history.page(limit=10, cursor=cursor)
    assert [item["id"] for item in second + third] == ids[10:]
    assert last is None
    with pytest.raises(InvalidRequest, match="cursor"):
        history.page(cursor="not-a-cursor")


def test_filters_by_endpoint_label_and_time(desk):
    tagloop, version_id = desk
    ids = log_rows(
        tagloop,
        version_id,
        [
            ("desk", "NETWORK", utcnow() - timedelta(minutes=5)),
            ("desk", "EMAIL", utcnow() - timedelta(hours=2)),
            ("other", "NETWORK", utcnow() - timedelta(days=3)),
        ],
    )
    history = tagloop.prediction_history

    def listed(**filters) -> list[str]:
        return [item["id"] for item in history.page(**filters)[0]]

    assert listed() == ids
    assert listed(endpoint="desk") == ids[:2]
    assert listed(label="NETWORK") == [ids[0], ids[2]]
    assert listed(endpoint="desk", label="NETWORK") == [ids[0]]
    assert listed(since="1h") == [ids[0]]
    assert listed(since="1d") == ids[:2]
    assert listed(since=(utcnow() - timedelta(days=4)).date().isoformat()) == ids
    assert listed(endpoint="nowhere") == []
    with pytest.raises(InvalidRequest, match="since: 'yesterday' is not a date"):
        history.page(since="yesterday")


def test_since_takes_dates_times_and_durations():
    assert parse_since("2026-11-30", NOW) == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_since("2026-11-30T14:00:00", NOW) == datetime(2026, 11, 30, 14, tzinfo=UTC)
    assert parse_since("2026-11-30T14:00:00+02:00", NOW) == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert parse_since("2026-11-30T14:00:00Z", NOW) == datetime(2026, 11, 30, 14, tzinfo=UTC)
    assert parse_since("90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("24h", NOW) == NOW - timedelta(hours=24)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since(" 2w ", NOW) == NOW - timedelta(weeks=2)
    for wrong in ("", "7", "7 days", "-1d", "2026-13-01", "99999999999d", "1e9w"):
        with pytest.raises(InvalidRequest, match="since: "):
            parse_since(wrong, NOW)


def test_predictions_can_be_logged_without_their_text(desk):
    tagloop, version_id = desk
    _, model = tagloop.predictions.model("desk")
    [prediction] = tagloop.predictions.classify(model, ["the vpn drops every ten minutes"])
    log = PredictionLog(tagloop.database, flush_seconds=0.01, keep_text=False)
    prediction_id = log.record("desk", version_id, "the vpn drops every ten minutes", prediction)
    log.close()
    [item] = tagloop.prediction_history.page()[0]
    assert item["id"] == prediction_id
    assert item["text"] is None
    assert (item["label"], item["score"]) == (prediction.labels[0], prediction.scores[0])
    assert [entry["name"] for entry in item["classes"]] == prediction.labels


def test_retention_deletes_old_predictions_in_batches(desk, monkeypatch):
    tagloop, version_id = desk
    monkeypatch.setattr(prediction_history, "PURGE_BATCH", 3)
    old = [("desk", "NETWORK", NOW - timedelta(days=30, minutes=n + 1)) for n in range(7)]
    young = [("desk", "EMAIL", NOW - timedelta(days=29, hours=23)), ("other", "EMAIL", NOW)]
    kept = log_rows(tagloop, version_id, young)
    log_rows(tagloop, version_id, old)
    assert PredictionHistory(tagloop.database, retention_days=0).purge(NOW) == 0  # 0: forever
    assert count(tagloop) == 9
    assert PredictionHistory(tagloop.database, retention_days=30).purge(NOW) == 7
    assert sorted(item["id"] for item in tagloop.prediction_history.page()[0]) == sorted(kept)
    assert PredictionHistory(tagloop.database, retention_days=30).purge(NOW) == 0


def test_filters_by_score_range_routed_and_feedback_and_one_by_id(desk):
    from tagloop.domain.records import Mode
    from tagloop.domain.review import NewTask
    from tagloop.errors import NotFound

    tagloop, version_id = desk
    history = tagloop.prediction_history
    ids = log_rows(tagloop, version_id, [("desk", "NETWORK", NOW - timedelta(minutes=m)) for m in range(4)])
    with tagloop.database.transaction() as session:  # scores 0.9, 0.7, 0.5, 0.3 (newest first)
        for prediction_id, score in zip(ids, (0.9, 0.7, 0.5, 0.3), strict=True):
            row = session.get(PredictionRow, prediction_id)
            row.top_score = score
    routed, feedback, both = ids[0], ids[1], ids[2]
    task = {"text": "t", "mode": Mode.MULTI_CLASS, "choices": ("NETWORK", "OTHER")}
    tagloop.review.add_tasks(
        [
            NewTask(reason="low_confidence", prediction_id=routed, **task),
            NewTask(reason="feedback", prediction_id=feedback, **task),
            NewTask(reason="audit", prediction_id=both, **task),
            NewTask(reason="feedback", prediction_id=both, **task),
        ]
    )

    def listed(**filters) -> list[str]:
        return [item["id"] for item in history.page(**filters)[0]]

    assert listed(min_score=0.5) == ids[:3] and listed(max_score=0.5) == ids[2:]
    assert listed(min_score=0.6, max_score=0.8) == [ids[1]]
    assert listed(routed=True) == [routed, both] and listed(routed=False) == [feedback, ids[3]]
    assert listed(feedback=True) == [feedback, both] and listed(feedback=False) == [routed, ids[3]]
    assert listed(routed=True, feedback=True) == [both]
    assert listed(routed=False, feedback=False, min_score=0.0) == [ids[3]]
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InvalidRequest, match="a score from 0 to 1"):
            history.page(min_score=bad)
    reasons = history.review_reasons(ids)
    assert sorted(reasons[both]) == ["audit", "feedback"] and ids[3] not in reasons
    one = history.get(routed)
    assert (one["id"], one["label"], one["score"], one["endpoint"]) == (routed, "NETWORK", 0.9, "desk")
    with pytest.raises(NotFound, match="no logged prediction"):
        history.get("nope")
    trail = tagloop.review.for_prediction(both)
    assert sorted(view.reason for view in trail) == ["audit", "feedback"]
    assert {view.prediction_id for view in trail} == {both} and tagloop.review.for_prediction(ids[3]) == []
