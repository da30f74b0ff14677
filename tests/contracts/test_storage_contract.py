"""Storage behaviour every database must share: run on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tagloop.domain.metrics import METRIC_NAMES
from tagloop.errors import AlreadyExists, ConfigurationError, DatasetInvalid, InvalidRequest
from tagloop.services.training import TrainRequest
from tagloop.storage import migrate
from tagloop.storage.repositories import DocumentRepository
from tagloop.storage.tables import Base


@pytest.fixture
def store(make_tagloop, database_url):
    return make_tagloop(database_url=database_url)


@pytest.fixture
def tickets_csv(tickets, write_csv):
    return write_csv([list(row) for row in tickets], "tickets.csv")


def row_counts(tagloop) -> dict[str, int]:
    with tagloop.database.reading() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def test_migrations_reach_head_and_are_idempotent(store):
    head = migrate.head_revision(store.database)
    assert migrate.current_revision(store.database) == head
    assert migrate.upgrade(store.database) == head
    assert migrate.upgrade(store.database) == head


def test_training_creates_versions_with_their_records(store, tickets_csv):
    first = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    second = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert (first["version"], second["version"]) == ("v1", "v2")
    assert first["status"] == second["status"] == "TRAINED"
    assert first["data_fingerprint"] == second["data_fingerprint"]
    assert set(first["metrics"]) == set(METRIC_NAMES)
    assert first["documents"]["train"] + first["documents"]["test"] == 414
    assert len(first["labels"]) == 6
    full = store.catalog.version("desk", "v1")
    assert set(full["library_versions"]) >= {"python", "numpy", "scipy", "scikit-learn", "tagloop"}
    assert {"import_seconds", "fit_seconds", "evaluate_seconds", "save_seconds"} <= set(full["timings"])
    assert full["confusion_matrix"]["type"] == "multi_class"
    assert full["artifact"]["sha256"] and full["artifact"]["bytes"] > 0
    assert full["created_at"].endswith("+00:00") and full["ended_at"].endswith("+00:00")
    assert [v["version"] for v in store.catalog.versions("desk")] == ["v1", "v2"]


def test_a_rejected_file_writes_nothing(store, tickets, write_csv):
    before = row_counts(store)
    rows = [list(row) for row in tickets[:50]] + [["NETWORK", ""]] + [list(row) for row in tickets[50:100]]
    bad = write_csv(rows, "bad.csv")
    with pytest.raises(DatasetInvalid) as caught:
        store.training.train(TrainRequest(classifier="fresh", data=str(bad)))
    assert [(issue.line, issue.reason) for issue in caught.value.issues] == [(51, "empty text")]
    assert row_counts(store) == before
    good = write_csv([list(row) for row in tickets], "good.csv")
    bad_test = write_csv([["NETWORK", "fine"], ["A|B", "two labels in multi-class"]], "bad-test.csv")
    with pytest.raises(DatasetInvalid, match="line 2"):
        store.training.train(TrainRequest(classifier="fresh", data=str(good), test=str(bad_test)))
    assert row_counts(store) == before


def test_names_and_modes_are_checked(store, tickets_csv):
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), version_name="first"))
    with pytest.raises(AlreadyExists):
        store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), version_name="first"))
    from tagloop.domain.records import Mode

    with pytest.raises(InvalidRequest, match="MULTI_CLASS"):
        store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), mode=Mode.MULTI_LABEL))
    with pytest.raises(InvalidRequest, match="invalid classifier name"):
        store.training.train(TrainRequest(classifier="bad name", data=str(tickets_csv)))


def test_document_repository_streams_in_id_order(store, tickets_csv):
    submission = store.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with store.database.reading() as session:
        version = store.training.summary(submission.version_id)
        documents = DocumentRepository(session)
        from tagloop.storage.tables import ModelVersionRow

        dataset_id = session.get_one(ModelVersionRow, submission.version_id).train_dataset_id
        rows = documents.labels(dataset_id)
        assert [id_ for id_, _ in rows] == sorted(id_ for id_, _ in rows)
        train = documents.labels(dataset_id, "train")
        test = documents.labels(dataset_id, "test")
        assert len(train) + len(test) == len(rows) == 414
        assert len(test) == version["documents"]["test"]
        texts = list(documents.texts(dataset_id, "train", chunk=7))
        assert len(texts) == len(train)
        assert documents.count(dataset_id, "test") == len(test)


def test_an_out_of_date_server_schema_is_refused_not_migrated(make_tagloop, postgres_db):
    from alembic import command

    from tagloop.app import Tagloop
    from tagloop.settings import Settings

    tagloop = make_tagloop(database_url=postgres_db)
    config = migrate._config(tagloop.database)
    with tagloop.database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    with pytest.raises(ConfigurationError, match="tagloop db upgrade"):
        Tagloop(Settings(database_url=postgres_db))
    assert migrate.current_revision(tagloop.database) == "0003"
    migrate.upgrade(tagloop.database)
