"""Iterations (services/iterations.py): train a challenger, evaluate both on the same frozen
test set, decide, promote in the same transaction; stop, failure, retry, triggers. On the
embedded database and on PostgreSQL. (A worker killed mid-iteration: tests/jobs.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tagloop.domain.loop import held_out, text_hash
from tagloop.domain.records import Mode, Split
from tagloop.domain.review import NewTask
from tagloop.errors import ResourceInUse
from tagloop.jobs.port import JobContext
from tagloop.services.iterations import IterateJob
from tagloop.services.training import TrainRequest
from tagloop.storage.events import EventRepository
from tagloop.storage.loops import LoopRepository
from tagloop.storage.repositories import ClassifierRepository, DatasetRepository, DocumentRepository
from tagloop.storage.tables import DocumentRow, LoopDatasetRow, LoopRow, ModelVersionRow, utcnow

SUMMARY_KEYS = {
    "classifier", "iteration", "id", "number", "status", "trigger", "champion", "challenger",
    "metrics", "per_label", "documents", "rule", "decision", "reason", "message", "job_id",
    "created_at", "started_at", "ended_at",
}  # fmt: skip


@pytest.fixture
def desk(make_tagloop, database_url, tickets_csv):
    tagloop = make_tagloop(database_url=database_url)
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    return tagloop


def verify(tagloop, rows: list[tuple[str, str]]) -> None:
    """Verified documents the real way: review tasks answered (storage/review write_document)."""
    with tagloop.database.reading() as session:
        classifier_id = ClassifierRepository(session).get("desk").id
        labels = tuple(session.scalars(select(ModelVersionRow.labels)).first())
    new = [
        NewTask(text, Mode.MULTI_CLASS, labels, "feedback", classifier_id=classifier_id) for text, _ in rows
    ]
    tagloop.review.add_tasks(new)
    wanted = dict(rows)
    while (task := tagloop.review.next_task("ann")) is not None:
        tagloop.review.answer(task.id, "ann", labels=[wanted[task.text]])


def version_texts(tagloop, version: str) -> tuple[list[str], list[str]]:
    with tagloop.database.reading() as session:
        row = session.scalars(select(ModelVersionRow).where(ModelVersionRow.name == version)).one()
        documents = DocumentRepository(session)
        return (
            list(documents.texts(row.train_dataset_id, Split.TRAIN.value)),
            list(documents.texts(row.test_dataset_id, Split.TEST.value)),
        )


def test_first_iteration_promotes_and_the_next_equal_one_keeps(desk):
    follows = desk.endpoints.create("follows", "desk", "v1", follow=True)
    desk.queue.run_now(follows["job_id"])
    desk.loops.promote("desk", "v1")
    with desk.database.transaction() as session:  # forget v1 was champion: "no champion yet"
        session.execute(update(LoopRow).values(active_version_id=None))
    first = desk.iterations.run("desk")
    assert set(first) == SUMMARY_KEYS
    assert (first["status"], first["decision"], first["number"]) == ("COMPLETED", "promoted", 1)
    assert first["champion"] is None and first["challenger"] == "v2"
    assert first["metrics"]["challenger"]["F1Score"] > 0.5 and first["metrics"]["champion"] is None
    assert len(first["iteration"]) == 16 and first["iteration"].endswith("Z")
    assert desk.loops.champion("desk")["version"] == "v2"
    assert desk.endpoints.show("follows")["version"] == "v2"

    second = desk.iterations.run("desk")
    assert (second["champion"], second["challenger"], second["decision"]) == ("v2", "v3", "kept")
    assert "no change" in second["reason"]  # same data, same recipe: the same figures
    assert second["metrics"]["champion"] == second["metrics"]["challenger"]
    assert set(second["per_label"]["HARDWARE"]) == {"champion", "challenger", "delta"}
    assert second["iteration"] != first["iteration"]
    assert desk.loops.champion("desk")["version"] == "v2"
    assert [i["number"] for i in desk.iterations.list("desk")] == [2, 1]
    assert [i["number"] for i in desk.iterations.list("desk", after=second["iteration"])] == [1]
    assert desk.iterations.get("desk", first["iteration"])["id"] == first["id"]
    with desk.database.reading() as session:
        kinds = [e.kind for e in EventRepository(session).list()]
    assert kinds.count("iteration.completed") == 2 and kinds.count("version.promoted") == 2


def test_the_frozen_test_set_never_leaks_into_training(desk, tickets):
    desk.loops.promote("desk", "v1")
    # verified documents: the rule puts a share in the test split, once, by their text
    texts = [(f"the office printer number {i} jams on every page", "HARDWARE") for i in range(40)]
    verify(desk, texts)
    with desk.database.reading() as session:
        verified = session.execute(
            select(DocumentRow.text, DocumentRow.split, DocumentRow.text_hash).where(
                DocumentRow.dataset_id.is_(None)
            )
        ).all()
    assert len(verified) == 40
    assert all(h == text_hash(t) and s == ("test" if held_out(h, 0.2) else "train") for t, s, h in verified)
    held = {t for t, s, _ in verified if s == "test"}
    assert 0 < len(held) < 40
    # loop datasets: a TRAIN one repeating a text of the TEST one
    with desk.database.transaction() as session:
        classifier = ClassifierRepository(session).get("desk")
        loop = LoopRepository(session).find(classifier.id)
        for kind, rows in (
            ("TRAIN", [("HARDWARE", "my monitor flickers"), ("HARDWARE", "the dock is dead")]),
            ("TEST", [("HARDWARE", "the dock is dead"), ("HARDWARE", "keyboard keys stick")]),
        ):
            dataset = DatasetRepository(session).add(classifier.id, f"{kind}.csv", "csv")
            DocumentRepository(session).add_many(
                {"classifier_id": classifier.id, "dataset_id": dataset.id, "text": text, "labels": [label],
                 "origin": "import", "split": Split.TRAIN.value, "line": n}
                for n, (label, text) in enumerate(rows)
            )  # fmt: skip
            session.add(
                LoopDatasetRow(
                    loop_id=loop.id, dataset_id=dataset.id, name=kind.lower(), kind=kind,
                    source=f"{kind}.csv", status="COMPLETED", documents=len(rows),
                )
            )  # fmt: skip
    result = desk.iterations.run("desk")
    assert result["status"] == "COMPLETED"
    train, test = version_texts(desk, result["challenger"])
    _, champion_test = version_texts(desk, "v1")
    assert not set(train) & set(test)
    assert set(test) == set(champion_test) | held | {"the dock is dead", "keyboard keys stick"}
    assert "my monitor flickers" in train and "the dock is dead" not in train
    assert {t for t, _ in texts} - held <= set(train)
    assert result["documents"]["test"] == len(test) and result["documents"]["train"] == len(train)
    assert result["documents"]["test_feedback"] == len(held)
    # both evaluated on exactly those documents
    assert result["metrics"]["champion"] is not None
    supports = {
        label: f for label, f in desk.catalog.version("desk", result["challenger"])["per_label"].items()
    }
    assert sum(int(f["support"]) for f in supports.values()) == len(test)


def test_manual_promotion_records_the_verdict_and_moves_nothing(desk):
    desk.loops.configure("desk", {"promote": "manual"})
    result = desk.iterations.run("desk")
    assert result["decision"] == "kept" and "manual" in result["reason"]
    assert desk.loops.champion("desk") is None
    assert desk.loops.promote("desk", result["challenger"])["champion"] == result["challenger"]


def test_one_iteration_at_a_time_and_stop_before_it_runs(desk):
    started = desk.iterations.start("desk")
    assert started["status"] == "TRAINING"
    with pytest.raises(ResourceInUse, match="in progress"):
        desk.iterations.start("desk")
    stopped = desk.iterations.stop("desk", started["iteration"])
    assert stopped["status"] == "STOPPED" and stopped["ended_at"] is not None
    assert desk.iterations.start("desk")["number"] == 2


def test_stop_while_training_never_promotes(desk):
    started = desk.iterations.start("desk")
    job = IterateJob(desk.iterations)
    context = JobContext(started["job_id"], "iterate", 1, lambda f, m: None, lambda: True, lambda k, p: [])
    with pytest.raises(Exception, match="stopped"):
        job.run(context, {"iteration_id": started["id"]})
    result = desk.iterations.get("desk", started["iteration"])
    assert result["status"] == "STOPPED" and result["decision"] is None
    assert desk.catalog.version("desk", result["challenger"])["status"] == "STOPPED"
    assert desk.loops.champion("desk") is None


def test_a_failed_iteration_is_recorded_and_its_retry_does_not_train_again(desk):
    desk.loops.promote("desk", "v1")
    model = Path(desk.catalog.version("desk", "v1")["artifact"]["path"])
    good = model.read_bytes()
    model.write_bytes(b"not a model")  # the champion cannot be evaluated
    desk.models = desk.iterations.models = type(desk.models)(desk.artifacts)  # nothing cached
    failed = desk.iterations.run("desk")
    assert failed["status"] == "FAILED" and failed["message"]
    assert desk.catalog.version("desk", failed["challenger"])["status"] == "TRAINED"
    trained_at = desk.catalog.version("desk", failed["challenger"])["ended_at"]
    with desk.database.reading() as session:
        assert [e.kind for e in EventRepository(session).list(kind="iteration.failed")] == [
            "iteration.failed"
        ]
    model.write_bytes(good)
    desk.jobs.retry(failed["job_id"])
    desk.queue.run_now(failed["job_id"])
    done = desk.iterations.get("desk", failed["iteration"])
    assert done["status"] == "COMPLETED" and done["challenger"] == failed["challenger"]
    assert desk.catalog.version("desk", done["challenger"])["ended_at"] == trained_at  # not trained again


def test_triggers_after_verified_documents_and_on_a_schedule(desk):
    desk.loops.configure("desk", {"after_verified": 3})
    verify(desk, [("printer jams", "HARDWARE"), ("screen is dark", "HARDWARE")])
    desk.iterations.tick()
    assert desk.iterations.list("desk") == []
    verify(desk, [("mouse is dead", "HARDWARE")])
    desk.iterations.tick()
    [started] = desk.iterations.list("desk")
    assert started["trigger"] == "verified"
    desk.iterations.tick()  # running, and no new verified document since it started
    desk.queue.run_until_idle()
    desk.iterations.tick()
    assert len(desk.iterations.list("desk")) == 1

    desk.loops.configure("desk", {"after_verified": None, "every_seconds": 60})
    with desk.database.transaction() as session:
        session.execute(update(LoopRow).values(next_run_at=utcnow() - timedelta(seconds=1)))
    desk.iterations.tick()
    newest = desk.iterations.list("desk")[0]
    assert newest["trigger"] == "schedule"
    assert desk.loops.settings("desk")["next_run_at"] > newest["created_at"]


def test_a_challenger_keeps_the_champions_self_training_and_learns_from_the_pool(
    make_tagloop, tickets, write_csv
):
    from tagloop.recipes.tfidf_linear import TfidfLinearParams

    tagloop = make_tagloop()
    labelled, pooled = tickets[::2], tickets[1::2]
    data = write_csv([list(row) for row in labelled], "labelled.csv")
    tagloop.training.train(
        TrainRequest(classifier="desk", data=str(data), params=TfidfLinearParams(self_training=True))
    )
    tagloop.loops.promote("desk", "v1")
    tagloop.pool.add("desk", str(write_csv([list(row) for row in pooled], "pool.csv")))
    waiting = tagloop.pool.count("desk")
    iteration = tagloop.iterations.run("desk")
    assert (iteration["champion"], iteration["challenger"]) == ("v1", "v2")
    assert tagloop.catalog.version("desk", "v2")["parameters"]["self_training"] is True
    _, challenger = tagloop.predictions.model("desk", "v2")
    assert challenger.calibration["self_trained"] == waiting["waiting"] > 0  # type: ignore[attr-defined]
