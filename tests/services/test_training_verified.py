"""Training on verified documents (`tagloop train C --with-verified`): review answers and
feedback, consolidated into documents of origin review/feedback, join the training split of a
new version (copied, so the version's data never changes afterwards), counted by origin; run on
SQLite and on the real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tagloop.domain.records import Origin, Split
from tagloop.errors import InvalidRequest, NotFound
from tagloop.services.training import TrainRequest
from tagloop.storage.repositories import ClassifierRepository, DocumentRepository
from tagloop.storage.tables import DocumentRow, ModelVersionRow


@pytest.fixture
def store(make_tagloop, database_url):
    return make_tagloop(database_url=database_url)


def add_verified(
    store, classifier: str, rows: list[tuple[str, str, Origin]], split: Split = Split.TRAIN
) -> None:
    with store.database.transaction() as session:
        classifier_id = ClassifierRepository(session).get(classifier).id
        DocumentRepository(session).add_many(
            {
                "classifier_id": classifier_id,
                "dataset_id": None,
                "text": text,
                "labels": [label],
                "origin": origin.value,
                "split": split.value,
                "line": None,
            }
            for text, label, origin in rows
        )


VERIFIED = [
    ("the espresso machine in the kitchen leaks again", "FACILITIES", Origin.REVIEW),
    ("coffee machine on floor 3 is broken", "FACILITIES", Origin.REVIEW),
    ("the kitchen sink is blocked", "FACILITIES", Origin.FEEDBACK),
    ("please fix the kitchen coffee machine", "FACILITIES", Origin.REVIEW),
]


def test_verified_documents_join_the_training_split_and_are_counted(store, tickets_csv):
    first = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    add_verified(store, "desk", VERIFIED)
    second = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), with_verified=True))
    assert second["documents"]["review"] == 3
    assert second["documents"]["feedback"] == 1
    assert second["documents"]["train"] == first["documents"]["train"] + 4
    assert second["documents"]["test"] == first["documents"]["test"]  # verified ones never tested on
    assert "FACILITIES" in second["labels"] and "FACILITIES" not in first["labels"]
    assert second["data_fingerprint"] != first["data_fingerprint"]
    # the new version learnt the label only the verified documents have
    name, model = store.predictions.model("desk")
    assert name == second["version"]
    [prediction] = store.predictions.classify(model, ["the espresso machine in the kitchen leaks"])
    assert prediction.labels[0] == "FACILITIES"


def test_retraining_without_a_file_reuses_the_latest_data_and_keeps_old_versions_unchanged(
    store, tickets_csv
):
    first = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    add_verified(store, "desk", VERIFIED)
    second = store.training.train(TrainRequest(classifier="desk", data=None, with_verified=True))
    assert second["documents"]["train"] == first["documents"]["train"] + 4
    assert second["documents"]["test"] == first["documents"]["test"]
    assert second["documents"]["review"] == 3
    with store.database.reading() as session:
        rows = {row.name: row for row in session.scalars(select(ModelVersionRow))}
        old_train = session.scalar(
            select(func.count()).where(
                DocumentRow.dataset_id == rows[first["version"]].train_dataset_id,
                DocumentRow.split == Split.TRAIN.value,
            )
        )

        # the same test documents, copied into the new version's own dataset (its test split)
        def test_texts(row: ModelVersionRow) -> list[str]:
            return list(DocumentRepository(session).texts(row.test_dataset_id, Split.TEST.value))

        assert test_texts(rows[second["version"]]) == test_texts(rows[first["version"]])
        assert rows[second["version"]].test_dataset_id == rows[second["version"]].train_dataset_id
        assert rows[second["version"]].train_dataset_id != rows[first["version"]].train_dataset_id
    assert old_train == first["documents"]["train"]
    # more verified data later never changes the version trained before it
    add_verified(store, "desk", [("the fridge smells", "FACILITIES", Origin.REVIEW)])
    third = store.training.train(TrainRequest(classifier="desk", data=None, with_verified=True))
    assert third["documents"]["review"] == 4
    assert third["documents"]["train"] == second["documents"]["train"] - 4 + 5  # copies, not stacked
    assert store.catalog.version("desk", second["version"])["documents"]["review"] == 3


def test_with_verified_and_none_yet_warns(store, tickets_csv):
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    result = store.training.train(TrainRequest(classifier="desk", data=None, with_verified=True))
    assert any("no verified documents yet" in warning for warning in result["warnings"])
    assert result["documents"]["review"] == result["documents"]["feedback"] == 0


def test_retraining_needs_data_or_verified_and_a_trained_version(store, tickets_csv):
    with pytest.raises(InvalidRequest, match="--with-verified"):
        store.training.train(TrainRequest(classifier="desk", data=None))
    with pytest.raises(NotFound):
        store.training.train(TrainRequest(classifier="nobody", data=None, with_verified=True))


HELD_OUT = [
    ("the dishwasher on floor 2 floods the kitchen", "FACILITIES", Origin.REVIEW),
    ("coffee machine on floor 3 is broken", "FACILITIES", Origin.FEEDBACK),  # also a train text
]


@pytest.mark.parametrize("data", ["file", "none"])
def test_held_out_verified_documents_join_the_test_set_and_are_never_trained_on(store, tickets_csv, data):
    first = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    add_verified(store, "desk", VERIFIED)
    add_verified(store, "desk", HELD_OUT, Split.TEST)
    second = store.training.train(
        TrainRequest(classifier="desk", data=str(tickets_csv) if data == "file" else None, with_verified=True)
    )
    assert second["documents"]["test"] == first["documents"]["test"] + 2
    # the verified train document with the text of a held-out one is left out of training
    assert second["documents"]["train"] == first["documents"]["train"] + 3
    assert any("text of a test document" in warning for warning in second["warnings"])
    with store.database.reading() as session:
        row = session.scalars(select(ModelVersionRow).where(ModelVersionRow.name == second["version"])).one()
        documents = DocumentRepository(session)
        train = set(documents.texts(row.train_dataset_id, Split.TRAIN.value))
        test = set(documents.texts(row.test_dataset_id, Split.TEST.value))
    assert {text for text, _, _ in HELD_OUT} <= test
    assert not train & test
