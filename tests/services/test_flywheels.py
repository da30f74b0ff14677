"""FlywheelService: flywheels on classifiers' loops, their datasets, iterations and deletion,
on SQLite and PostgreSQL (no job workers run here: a started iteration stays TRAINING until
the test runs its job)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tagloop.domain.records import Mode
from tagloop.errors import AlreadyExists, DatasetInvalid, InvalidRequest, NotFound, ResourceInUse
from tagloop.services.training import TrainRequest
from tagloop.storage.loop_datasets import LoopDatasetRepository
from tagloop.storage.tables import ClassifierRow, DatasetRow, DocumentRow, LoopRow

LAKE = "s3://lake/flywheels/"
TASK = {"LanguageCode": "en", "DocumentClassificationConfig": {"Mode": "MULTI_CLASS", "Labels": ["A", "B"]}}


@pytest.fixture
def tagloop(make_tagloop, database_url):
    return make_tagloop(database_url=database_url)


@pytest.fixture
def desk(tagloop, tickets_csv) -> str:
    """Classifier ``desk`` with a trained version ``v1``."""
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), mode=Mode.MULTI_CLASS))
    return "desk"


def count(tagloop, model, *where) -> int:
    with tagloop.database.reading() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_flywheel_adopts_its_classifiers_loop(tagloop, desk, tickets_csv):
    tagloop.loops.settings(desk)  # the loop exists before the flywheel (made on first use)
    made = tagloop.flywheels.create("wheel", classifier=desk, data_lake_uri=LAKE, role_arn="role")
    assert (made["classifier"], made["active_version"], made["status"]) == (desk, "v1", "ACTIVE")
    assert count(tagloop, LoopRow) == 1
    assert tagloop.loops.champion(desk)["version"] == "v1"
    assert tagloop.flywheels.classifier_of("wheel") == desk
    assert tagloop.flywheels.flywheel_of(desk) == "wheel"
    with pytest.raises(AlreadyExists):
        tagloop.flywheels.create("wheel", classifier=desk)
    with pytest.raises(ResourceInUse):
        tagloop.flywheels.create("wheel-2", classifier=desk)
    with pytest.raises(NotFound):
        tagloop.flywheels.show("nowhere")


def test_datasets_are_imported_whole_or_not_at_all(tagloop, desk, tickets_csv, write_csv):
    tagloop.flywheels.create("wheel", classifier=desk)
    added = tagloop.flywheels.create_dataset("wheel", "extra", str(tickets_csv), kind="TEST")
    assert (added["status"], added["documents"], added["kind"]) == ("COMPLETED", 414, "TEST")
    with tagloop.database.reading() as session:
        loop = session.scalar(select(LoopRow).where(LoopRow.name == "wheel"))
        assert LoopDatasetRepository(session).dataset_ids(loop.id, "TEST") == [
            LoopDatasetRepository(session).get(loop.id, "extra").dataset_id
        ]
        assert LoopDatasetRepository(session).dataset_ids(loop.id, "TRAIN") == []
    documents = count(tagloop, DocumentRow)
    bad = write_csv([["A", "fine"], ["B", ""]], "bad.csv")  # an empty text: the file is refused
    with pytest.raises(DatasetInvalid):
        tagloop.flywheels.create_dataset("wheel", "bad", str(bad))
    assert count(tagloop, DocumentRow) == documents
    assert [d["name"] for d in tagloop.flywheels.datasets("wheel")] == ["extra"]
    with pytest.raises(InvalidRequest):
        tagloop.flywheels.create_dataset("wheel", "odd", str(tickets_csv), kind="VALIDATION")


def test_a_running_iteration_keeps_its_flywheel(tagloop, desk, tickets_csv):
    tagloop.flywheels.create("wheel", classifier=desk)
    tagloop.flywheels.create_dataset("wheel", "more", str(tickets_csv))
    started = tagloop.flywheels.start_iteration("wheel")
    assert started["status"] == "TRAINING" and started["trigger"] == "api"
    with pytest.raises(ResourceInUse):
        tagloop.flywheels.start_iteration("wheel")
    with pytest.raises(ResourceInUse):
        tagloop.flywheels.delete("wheel")
    tagloop.queue.run_now(started["job_id"])
    done = tagloop.flywheels.iteration("wheel", started["iteration"])
    assert done["status"] == "COMPLETED", done
    assert [item["iteration"] for item in tagloop.flywheels.history("wheel")] == [started["iteration"]]
    assert tagloop.flywheels.show("wheel")["latest_iteration"] == started["iteration"]
    datasets = count(tagloop, DatasetRow)
    tagloop.flywheels.delete("wheel")
    # the flywheel and its dataset are gone; the classifier, its versions and its loop stay
    assert count(tagloop, DatasetRow) == datasets - 1
    assert count(tagloop, LoopRow, LoopRow.name.is_not(None)) == 0
    assert count(tagloop, LoopRow) == 1
    assert len(tagloop.catalog.versions(desk)) == 2
    assert [item["iteration"] for item in tagloop.iterations.list(desk)] == [
        started["iteration"]
    ]  # history kept


def test_a_task_configured_flywheel_makes_and_deletes_its_classifier(tagloop, write_csv):
    tagloop.flywheels.create("fresh", task_config=TASK, model_type="DOCUMENT_CLASSIFIER")
    assert count(tagloop, ClassifierRow, ClassifierRow.name == "fresh") == 1
    assert tagloop.flywheels.show("fresh")["active_version"] is None
    wrong = write_csv([["A", "one"], ["C", "two"]], "wrong.csv")
    with pytest.raises(DatasetInvalid, match="TaskConfig"):
        tagloop.flywheels.create_dataset("fresh", "wrong", str(wrong))
    right = write_csv([["A", "one"], ["B", "two"]], "right.csv")
    assert tagloop.flywheels.create_dataset("fresh", "right", str(right))["documents"] == 2
    tagloop.flywheels.delete("fresh")
    assert count(tagloop, ClassifierRow, ClassifierRow.name == "fresh") == 0
    assert count(tagloop, DocumentRow) == 0


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"classifier": "desk", "task_config": TASK, "model_type": "DOCUMENT_CLASSIFIER"}, InvalidRequest),
        ({}, InvalidRequest),
        ({"task_config": TASK}, InvalidRequest),
        ({"task_config": TASK, "model_type": "ENTITY_RECOGNIZER"}, InvalidRequest),
        ({"task_config": {"LanguageCode": "en"}, "model_type": "DOCUMENT_CLASSIFIER"}, InvalidRequest),
        (
            {
                "task_config": {
                    "LanguageCode": "en",
                    "DocumentClassificationConfig": {"Mode": "MULTI_CLASS", "Labels": ["A"]},
                },
                "model_type": "DOCUMENT_CLASSIFIER",
            },
            InvalidRequest,
        ),
        (
            {
                "task_config": {
                    "LanguageCode": "en",
                    "DocumentClassificationConfig": {"Mode": "MULTI_LABEL", "Labels": ["A|B"]},
                },
                "model_type": "DOCUMENT_CLASSIFIER",
            },
            InvalidRequest,
        ),
        (
            {
                "task_config": TASK,
                "model_type": "DOCUMENT_CLASSIFIER",
                "tags": [{"Key": "aws:x", "Value": ""}],
            },
            InvalidRequest,
        ),
        ({"classifier": "nobody"}, NotFound),
    ],
)
def test_bad_flywheels_are_refused_and_leave_nothing(tagloop, arguments, error):
    with pytest.raises(error):
        tagloop.flywheels.create("bad", **arguments)
    assert count(tagloop, LoopRow) == 0
    assert count(tagloop, ClassifierRow) == 0


def test_a_flywheel_on_another_version_promotes_it(tagloop, desk, tickets_csv):
    """The classifier's loop serves v2 through a following endpoint; a flywheel made on v1
    makes v1 the champion and the endpoint moves with it (one promotion, recorded)."""
    tagloop.training.train(TrainRequest(classifier=desk, data=str(tickets_csv), version_name="v2"))
    tagloop.endpoints.create("desk-live", desk, follow=True)  # no champion yet: v2, the newest
    assert tagloop.loops.champion(desk)["version"] == "v2"
    made = tagloop.flywheels.create("wheel", classifier=desk, version="v1")
    assert made["active_version"] == "v1"
    assert tagloop.endpoints.show("desk-live")["version"] == "v1"
    latest = tagloop.loops.history(desk)[0]
    assert (latest["from"], latest["to"], latest["reason"]) == ("v2", "v1", "CreateFlywheel")
    updated = tagloop.flywheels.update("wheel", classifier=desk, version="v2")
    assert updated["active_version"] == "v2" and tagloop.endpoints.show("desk-live")["version"] == "v2"
    with pytest.raises(InvalidRequest):
        tagloop.flywheels.update("wheel", classifier="elsewhere", version="v1")
