"""Production monitoring (services/monitoring.py) on a seeded database, on SQLite and on the
real PostgreSQL (``database_url`` runs each test on both): per-day figures, comparisons with
the training data and the previous day, routed share, reviewers' agreement, the reference
artifact, drift events recorded once per endpoint and day, and the queries' index use."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from sqlalchemy import func, insert, select, text

from tagloop.domain import drift
from tagloop.domain.records import Mode, Split
from tagloop.domain.review import NewTask
from tagloop.domain.test_predictions import TEST_PREDICTIONS, TestPredictions
from tagloop.errors import InvalidRequest, NotFound
from tagloop.services.model_cache import ModelCache
from tagloop.services.monitoring import MonitoringService, _stored_scores, _top_scores
from tagloop.services.prediction_log import new_prediction_id
from tagloop.services.review import ReviewService
from tagloop.services.training import TrainRequest
from tagloop.storage.events import EventRepository
from tagloop.storage.monitoring import MonitoringRepository
from tagloop.storage.repositories import DocumentRepository, PredictionRepository
from tagloop.storage.tables import EndpointRow, EventRow, ModelVersionRow, ReviewAnswerRow

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
DAY1, DAY2, DAY3 = (datetime(2026, 12, d, tzinfo=UTC) for d in (1, 2, 3))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def monitoring(tagloop, **overrides) -> MonitoringService:
    values = {"psi_threshold": 0.2, "min_count": 100, "refresh_seconds": 300.0, "clock": Clock(NOW)}
    values.update(overrides)
    return MonitoringService(tagloop.database, tagloop.artifacts, tagloop.models, **values)


@pytest.fixture
def desk(make_tagloop, database_url, tickets_csv):
    """The demo classifier trained on each database, endpoints ``desk`` and ``other`` on it."""
    tagloop = make_tagloop(database_url=database_url)
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    tagloop.endpoints.create("desk", "desk")
    tagloop.endpoints.create("other", "desk")
    with tagloop.database.reading() as session:
        version = session.scalars(select(ModelVersionRow)).one()
    return tagloop, version


def log(
    tagloop, version_id: int, endpoint: str, when: datetime, label: str | None, score: float | None
) -> str:
    return log_many(tagloop, version_id, endpoint, [(when, label, score)])[0]


def log_many(tagloop, version_id: int, endpoint: str, rows) -> list[str]:
    """Insert logged predictions (when, best label, best score) as the log's writer does."""
    batch, ids = [], []
    for when, label, score in rows:
        prediction_id = new_prediction_id()
        ids.append(prediction_id)
        result = {"Classes": [{"Name": label, "Score": score}]} if label else {"Labels": []}
        batch.append(
            {
                "id": prediction_id,
                "endpoint": endpoint,
                "version_id": version_id,
                "text": None,
                "result": orjson.dumps(result).decode(),
                "top_label": label,
                "top_score": score,
                "created_at": when,
            }
        )
    with tagloop.database.transaction() as session:
        PredictionRepository(session).add_many(batch)
    return ids


def spread(total: int, shares: dict[str, int]) -> list[str]:
    """``total`` labels in proportion to ``shares`` (largest remainders)."""
    weight = sum(shares.values())
    exact = {label: total * count / weight for label, count in shares.items()}
    counts = {label: int(value) for label, value in exact.items()}
    for label in sorted(exact, key=lambda item: counts[item] - exact[item])[: total - sum(counts.values())]:
        counts[label] += 1
    return [label for label, count in counts.items() for _ in range(count)]


def seed(tagloop, version, service: MonitoringService) -> dict[str, object]:
    """Day 1: like the training data (labels in its proportions, scores like its test set's);
    day 2: everything one label with low scores (drift); day 3 (today): 50 shifted ones, too
    few to flag. Plus the other endpoint's predictions, routed tasks and reviewers' answers."""
    reference = service.reference(version, Mode.MULTI_CLASS)
    labels = spread(200, reference["label_counts"])
    bins = [bin_ for bin_, count in enumerate(reference["score_histogram"]) for _ in range(count)]
    scores = [(bins[i * len(bins) // 200] + 0.5) / drift.SCORE_BINS for i in range(200)]
    day1 = [
        (DAY1 + timedelta(minutes=5 * i), label, score)
        for i, (label, score) in enumerate(zip(labels, scores, strict=True))
    ]
    log_many(tagloop, version.id, "desk", day1)
    log(
        tagloop, version.id, "desk", DAY2 - timedelta(microseconds=1), labels[0], 0.95
    )  # the day's last instant
    day2 = [(DAY2 + timedelta(minutes=5 * i), "NETWORK", 0.35) for i in range(200)]
    day2_ids = log_many(tagloop, version.id, "desk", day2)
    log_many(tagloop, version.id, "desk", [(DAY3 + timedelta(minutes=i), "NETWORK", 0.31) for i in range(50)])
    log_many(tagloop, version.id, "other", [(DAY2 + timedelta(minutes=i), "EMAIL", 0.99) for i in range(300)])
    # 20 routed tasks on day 2 (7 of 10 answers keep the model's label), 3 feedback tasks (not routed)
    review = ReviewService(tagloop.database, "uncertain", clock=Clock(DAY2 + timedelta(hours=3)))

    def task(reason: str, prediction_id: str, endpoint: str = "desk") -> NewTask:
        return NewTask(
            text="printer on fire",
            mode=Mode.MULTI_CLASS,
            choices=tuple(version.labels),
            reason=reason,
            classifier_id=version.classifier_id,
            endpoint=endpoint,
            version_id=version.id,
            prediction_id=prediction_id,
            prediction={"labels": ["NETWORK"], "scores": [0.35]},
        )

    routed = review.add_tasks([task("low_confidence" if i % 2 else "audit", day2_ids[i]) for i in range(20)])
    review.add_tasks([task("feedback", day2_ids[i]) for i in range(20, 23)])
    review.add_tasks([task("low_confidence", new_prediction_id(), "other") for _ in range(4)])
    with tagloop.database.transaction() as session:
        session.execute(
            insert(ReviewAnswerRow),
            [
                {
                    "task_id": task_id,
                    "reviewer": f"r{i}",
                    "status": "answered",
                    "labels": ["NETWORK"] if i < 7 else ["EMAIL"],
                    "accepted": i < 7,
                    "leased_at": DAY2 + timedelta(hours=4),
                    "answered_at": DAY3 + timedelta(hours=1),  # answered the next day: counted on day 2
                }
                for i, task_id in enumerate(routed[:10])
            ]
            + [{"task_id": routed[10], "reviewer": "r9", "status": "leased", "leased_at": DAY2}],
        )
    return {"reference": reference, "day1_labels": labels}


def test_report_per_day_against_training_and_the_previous_day(desk):
    tagloop, version = desk
    service = monitoring(tagloop)
    seeded = seed(tagloop, version, service)
    reference = seeded["reference"]
    found = service.report("desk", days=3)
    assert [day["day"] for day in found["days"]] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert [day["predictions"] for day in found["days"]] == [201, 200, 50]
    assert found["endpoint"] == "desk" and found["classifier"] == "desk" and found["version"] == "v1"
    assert found["reference"]["label_counts"] == version.label_counts
    assert found["reference"]["training_documents"] == sum(version.label_counts.values())
    assert found["reference"]["test_documents"] == sum(found["reference"]["score_histogram"]) > 0
    one, two, three = found["days"]

    day1_labels: dict[str, int] = {}
    for label in seeded["day1_labels"] + [seeded["day1_labels"][0]]:
        day1_labels[label] = day1_labels.get(label, 0) + 1
    assert one["labels"] == day1_labels
    assert one["vs_training"]["labels"]["psi"] == pytest.approx(
        drift.psi(reference["label_counts"], day1_labels), abs=1e-6
    )
    assert one["vs_training"]["labels"]["psi"] < 0.05 and one["vs_training"]["scores"]["psi"] < 0.1
    assert not one["drift"]

    assert two["labels"] == {"NETWORK": 200}
    assert two["score_histogram"] == [0, 0, 0, 200, 0, 0, 0, 0, 0, 0]
    assert two["vs_training"]["labels"]["psi"] == pytest.approx(
        drift.psi(reference["label_counts"], {"NETWORK": 200}), abs=1e-6
    )
    assert two["vs_training"]["scores"]["psi"] == pytest.approx(
        drift.psi(reference["score_histogram"], two["score_histogram"]), abs=1e-6
    )
    assert two["vs_previous"]["labels"]["psi"] == pytest.approx(
        drift.psi(day1_labels, {"NETWORK": 200}), abs=1e-6
    )
    assert two["vs_training"]["labels"]["p_value"] < 1e-6
    assert two["drift"] and two["event"] is False
    assert (two["routed"], two["routed_share"]) == (20, 0.1)
    assert (two["answers"], two["accepted"], two["agreement"]) == (10, 7, 0.7)
    assert (one["routed"], one["answers"], one["agreement"]) == (0, 0, None)

    assert three["vs_previous"]["labels"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert three["vs_training"]["labels"]["psi"] > 0.2 and not three["drift"]  # 50 < min_count
    assert found["drift"] is True  # the latest day with enough predictions drifted

    other = service.report("other", days=1)
    assert other["days"][0]["predictions"] == 0 and other["days"][0]["routed_share"] is None
    assert other["days"][0]["vs_training"]["labels"]["psi"] is None and other["drift"] is False
    assert service.report("other", days=2)["days"][0]["routed"] == 4


def test_each_day_is_compared_with_what_the_version_that_answered_it_learnt(desk, tickets, write_csv):
    """A promotion does not make the days before it look drifted: day 1 (answered by v1, like
    v1's training data) is judged by v1's reference even when v2, trained on other data, serves."""
    tagloop, v1 = desk
    skewed = [list(row) for row in tickets if row[0] == "NETWORK"]
    skewed += [
        list(row)
        for label in sorted({row[0] for row in tickets} - {"NETWORK"})
        for row in [r for r in tickets if r[0] == label][:12]
    ]
    tagloop.training.train(TrainRequest(classifier="desk", data=str(write_csv(skewed, "skewed.csv"))))
    with tagloop.database.transaction() as session:
        v2 = session.scalars(select(ModelVersionRow).where(ModelVersionRow.name == "v2")).one()
        endpoint = session.scalars(select(EndpointRow).where(EndpointRow.name == "desk")).one()
        endpoint.version_id = v2.id  # v2 serves now (as a finished deploy leaves it)
    service = monitoring(tagloop)
    rows: dict[int, list] = {}
    for version, day in ((v1, DAY1), (v2, DAY2)):  # each day like its version's training and test data
        reference = service.reference(version, Mode.MULTI_CLASS)
        labels = spread(200, reference["label_counts"])
        bins = [bin_ for bin_, count in enumerate(reference["score_histogram"]) for _ in range(count)]
        scores = [(bins[i * len(bins) // 200] + 0.5) / drift.SCORE_BINS for i in range(200)]
        rows[version.id] = [
            (day + timedelta(minutes=i), label, score)
            for i, (label, score) in enumerate(zip(labels, scores, strict=True))
        ]
        log_many(tagloop, version.id, "desk", rows[version.id])
    like_v1 = [label for _, label, _ in rows[v1.id]]
    found = service.report("desk", days=3)
    assert found["version"] == "v2"
    one, two, three = found["days"]
    assert (one["version"], two["version"], three["version"]) == (
        "v1",
        "v2",
        "v2",
    )  # day 3: none, the serving one
    assert one["vs_training"]["labels"]["psi"] < 0.05 and two["vs_training"]["labels"]["psi"] < 0.05
    assert not one["drift"] and not two["drift"]
    counts = {label: like_v1.count(label) for label in set(like_v1)}
    assert (
        drift.psi(service.reference(v2, Mode.MULTI_CLASS)["label_counts"], counts) > 0.2
    )  # v2 would flag it


def test_days_without_predictions_and_predictions_without_a_label(desk):
    tagloop, version = desk
    log_many(tagloop, version.id, "desk", [(NOW - timedelta(hours=1), None, None)] * 3)
    found = monitoring(tagloop).report("desk", days=5)
    assert len(found["days"]) == 5 and [day["predictions"] for day in found["days"]] == [0, 0, 0, 0, 3]
    assert found["days"][-1]["labels"] == {"(none)": 3}
    assert found["days"][-1]["score_histogram"] == [0] * drift.SCORE_BINS
    assert found["days"][-1]["vs_training"]["scores"]["psi"] is None


def test_bad_requests(desk):
    tagloop, _ = desk
    service = monitoring(tagloop)
    for days in (0, 91, -1, True, 2.5):
        with pytest.raises(InvalidRequest, match="days"):
            service.report("desk", days=days)  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="no endpoint"):
        service.report("nope")


def test_the_reference_is_computed_once_per_version_and_kept_as_an_artifact(desk):
    tagloop, version = desk
    first = monitoring(tagloop).reference(version, Mode.MULTI_CLASS)
    path = tagloop.artifacts.path(f"models/{version.classifier_id}/{version.id}/reference.json")
    assert orjson.loads(tagloop.artifacts.read_bytes(path)) == first
    assert first["model_sha256"] == version.artifact_sha256
    fresh = monitoring(tagloop)  # another process: reads the artifact, scores nothing

    def refuse(*_: object) -> None:
        raise AssertionError("scored the test set again")

    fresh._compute_reference = refuse  # type: ignore[method-assign]
    assert fresh.reference(version, Mode.MULTI_CLASS) == first
    # a damaged file is computed again (and replaced), never trusted
    tagloop.artifacts.write_bytes(f"models/{version.classifier_id}/{version.id}/reference.json", b"{not json")
    again = monitoring(tagloop).reference(version, Mode.MULTI_CLASS)
    assert again == first


def scored_reference(tagloop, version, mode: Mode) -> tuple[list[int], int]:
    """The score histogram and test document count the reference had when the monitoring
    service scored the whole test set itself (its computation before stored test predictions)."""
    model = ModelCache(tagloop.artifacts).get(version)
    with tagloop.database.reading() as session:
        texts = list(DocumentRepository(session).texts(version.test_dataset_id, Split.TEST.value))
    scores = _top_scores(model.scores(texts), model.decide, mode)
    return drift.score_histogram(scores), len(scores)


def test_a_trained_versions_reference_is_read_from_its_stored_test_predictions(desk):
    """Training stored the test set's predictions: the reference is built from them, with no
    model loaded in the monitoring process, and equals what scoring the test set gives."""
    tagloop, version = desk
    cache = ModelCache(tagloop.artifacts)
    service = MonitoringService(tagloop.database, tagloop.artifacts, cache)
    found = service.reference(version, Mode.MULTI_CLASS)
    assert len(cache) == 0  # no model loaded: nothing scored
    histogram, count = scored_reference(tagloop, version, Mode.MULTI_CLASS)
    assert count > 0
    assert (found["score_histogram"], found["test_documents"]) == (histogram, count)
    assert found["label_counts"] == version.label_counts


def test_a_version_without_stored_test_predictions_has_its_test_set_scored(desk):
    """An older version (no ``test_predictions.npz``) or a damaged file: its test set is scored
    in the process, to the same reference."""
    tagloop, version = desk
    from_file = monitoring(tagloop).reference(version, Mode.MULTI_CLASS)
    stored = f"models/{version.classifier_id}/{version.id}/{TEST_PREDICTIONS}"
    for damage in ("missing", "damaged"):
        tagloop.artifacts.delete_prefix(f"models/{version.classifier_id}/{version.id}/reference.json")
        if damage == "missing":
            tagloop.artifacts.delete_prefix(stored)
        else:
            tagloop.artifacts.write_bytes(stored, b"not an npz")
        cache = ModelCache(tagloop.artifacts)
        found = MonitoringService(tagloop.database, tagloop.artifacts, cache).reference(
            version, Mode.MULTI_CLASS
        )
        assert len(cache) == 1  # the model was loaded to score the test set
        assert found == from_file


def test_a_multi_label_versions_reference_from_stored_predictions_equals_scoring(
    make_tagloop, multi_label_csv
):
    tagloop = make_tagloop()
    tagloop.training.train(TrainRequest(classifier="ml", data=str(multi_label_csv), mode=Mode.MULTI_LABEL))
    with tagloop.database.reading() as session:
        version = session.scalars(select(ModelVersionRow)).one()
    cache = ModelCache(tagloop.artifacts)
    found = MonitoringService(tagloop.database, tagloop.artifacts, cache).reference(version, Mode.MULTI_LABEL)
    assert len(cache) == 0
    histogram, count = scored_reference(tagloop, version, Mode.MULTI_LABEL)
    assert count > 0
    assert (found["score_histogram"], found["test_documents"]) == (histogram, count)


def test_stored_predictions_that_lack_a_first_decided_labels_score_are_not_used():
    """A multi-label decision whose first label is not among the kept scores cannot give the
    best score as the log records it: None (the test set is scored instead)."""
    stored = TestPredictions(
        Mode.MULTI_LABEL,
        ["A", "B", "C"],
        np.array([1, 2, 3]),
        [(0,), (1,), (2,)],
        [(0, 1), (), (2,)],
        np.array([[0], [1], [1]], dtype=np.int32),
        np.array([[0.9], [0.4], [0.8]], dtype=np.float32),
    )
    assert _stored_scores(stored, Mode.MULTI_LABEL) is None
    assert _stored_scores(stored, Mode.MULTI_CLASS) == pytest.approx([0.9, 0.4, 0.8])
    kept = TestPredictions(**{**stored.__dict__, "predicted": [(0, 1), (), (1, 2)]})
    assert _stored_scores(kept, Mode.MULTI_LABEL) == pytest.approx([0.9, 0.8])  # none decided: left out


def drift_events(tagloop) -> list[EventRow]:
    with tagloop.database.reading() as session:
        return list(EventRepository(session).list(kind="drift.detected"))


def test_tick_records_one_event_per_endpoint_and_day_whoever_runs_it(desk):
    tagloop, version = desk
    seed(tagloop, version, monitoring(tagloop))
    services = [monitoring(tagloop) for _ in range(4)]  # four processes' services
    barrier = threading.Barrier(len(services))
    failures: list[BaseException] = []

    def run(service: MonitoringService) -> None:
        try:
            barrier.wait()
            service.run()
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    events = drift_events(tagloop)
    assert sorted((event.endpoint, event.payload["window"]) for event in events) == [
        ("desk", "2026-12-02"),
        ("other", "2026-12-02"),  # 300 EMAIL predictions scored 0.99: drifted too
    ]
    event = next(event for event in events if event.endpoint == "desk")
    assert (event.endpoint, event.classifier_id) == ("desk", version.classifier_id)
    assert event.payload["window"] == "2026-12-02" and event.payload["predictions"] == 200
    assert event.payload["vs_training"]["labels"]["psi"] >= 0.2
    services[0].tick()  # its first tick: runs, finds the events recorded
    services[0].tick()  # within refresh_seconds: nothing run
    monitoring(tagloop).tick()  # a new process's first tick: runs, finds the event recorded
    assert len(drift_events(tagloop)) == 2
    assert monitoring(tagloop).report("desk", days=2)["days"][0]["event"] is True
    # the gauges' figures: yesterday's (today has too few predictions)
    figures = services[0].latest()["desk"]
    assert figures["day"] == "2026-12-02" and figures["drift"] is True and figures["predictions"] == 200
    assert figures["psi"][("training", "labels")] >= 0.2
    assert figures["routed_share"] == 0.1 and figures["agreement"] == 0.7
    assert services[0].latest()["other"]["drift"] is True


def test_tick_survives_an_endpoint_deleted_meanwhile(desk):
    tagloop, version = desk
    service = monitoring(tagloop)
    seed(tagloop, version, service)
    with tagloop.database.transaction() as session:
        endpoint_id = session.scalar(select(EndpointRow.id).where(EndpointRow.name == "desk"))
    tagloop.endpoints.delete("desk")
    found = service.report("other", days=2)
    with tagloop.database.reading() as session:  # the event's lock finds no row: nothing recorded
        assert (
            session.scalar(select(func.count()).select_from(EndpointRow).where(EndpointRow.id == endpoint_id))
            == 0
        )
    service._record("desk", endpoint_id, found, found["days"][0] | {"day": "2026-12-02"})
    assert drift_events(tagloop) == []
    assert "desk" not in service.run()


def test_the_queries_read_the_predictions_through_their_endpoint_index(desk):
    tagloop, _ = desk
    with tagloop.database.transaction() as session:
        repo = MonitoringRepository(session)
        if repo.dialect == "postgresql":  # a month of 20 endpoints' predictions, and their statistics
            session.execute(
                text(
                    "INSERT INTO predictions (id, endpoint, result, top_label, top_score, created_at) "
                    "SELECT md5(i::text), 'e' || (i % 20), '{}'::jsonb, 'A', 0.5, "
                    "timestamptz '2026-11-01' + i * interval '1 minute' FROM generate_series(1, 40000) i"
                )
            )
            session.execute(text("ANALYZE predictions"))
        query = repo.predictions_query("e3", datetime(2026, 11, 1, tzinfo=UTC), DAY3)
        compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN" if repo.dialect == "sqlite" else "EXPLAIN"
        plan = " ".join(str(row) for row in session.execute(text(f"{explain} {compiled}")))
    assert "ix_predictions_endpoint_created" in plan, plan


def test_a_gauges_refresh_does_not_hold_back_the_tick(desk):
    tagloop, version = desk
    seed(tagloop, version, monitoring(tagloop))
    service = monitoring(tagloop)
    service.latest()  # a scrape: refreshes the figures in the background, records nothing
    assert service._refreshing is not None
    service._refreshing.join()
    assert service.latest()["desk"]["drift"] is True and drift_events(tagloop) == []
    service.tick()  # the ticker right after: still records
    assert sorted(event.endpoint for event in drift_events(tagloop)) == ["desk", "other"]
