"""Export of verified documents: what `tagloop train` reads back, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json

import pytest

from tagloop.domain.formats import FormatSpec
from tagloop.domain.limits import Limits
from tagloop.domain.records import Mode, Origin, Split
from tagloop.errors import InvalidRequest, NotFound
from tagloop.services.datasets import DatasetReader, ReadOptions
from tagloop.services.training import TrainRequest
from tagloop.services.verified import export_verified
from tagloop.storage.repositories import ClassifierRepository, DocumentRepository

ROWS = [
    ('the "espresso" machine, in the kitchen, leaks', ("FACILITIES",), Origin.REVIEW),
    ("line one\nline two of a long ticket", ("ACCESS", "EMAIL"), Origin.FEEDBACK),
]


@pytest.fixture
def store(make_tagloop, database_url, write_csv):
    store = make_tagloop(database_url=database_url)
    data = write_csv(
        [["ACCESS|EMAIL", f"cannot log in to mail {i}"] for i in range(20)]
        + [["FACILITIES", f"the kitchen tap drips {i}"] for i in range(20)],
        "multi.csv",
    )
    store.training.train(TrainRequest(classifier="desk", data=str(data), mode=Mode.MULTI_LABEL))
    with store.database.transaction() as session:
        classifier_id = ClassifierRepository(session).get("desk").id
        DocumentRepository(session).add_many(
            {
                "classifier_id": classifier_id,
                "dataset_id": None,
                "text": text,
                "labels": list(labels),
                "origin": origin.value,
                "split": Split.TRAIN.value,
                "line": None,
            }
            for text, labels, origin in ROWS
        )
    return store


def test_export_as_comprehend_csv_reads_back_as_training_data(store, tmp_path):
    path = tmp_path / "verified.csv"
    with open(path, "w", encoding="utf-8", newline="") as out:
        assert export_verified(store.database, "desk", out) == 2
    options = ReadOptions(
        FormatSpec.infer(str(path)), Mode.MULTI_LABEL, "|", Limits.from_settings(store.settings)
    )
    reader = DatasetReader(str(path), options)
    assert [(row.text, tuple(row.labels)) for row in reader] == [(text, labels) for text, labels, _ in ROWS]
    reader.finish()


def test_export_as_json_lines_keeps_the_origin(store):
    out = io.StringIO()
    assert export_verified(store.database, "desk", out, "jsonl") == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {"text": text, "labels": list(labels), "origin": origin.value} for text, labels, origin in ROWS
    ]


def test_documents_of_a_dataset_are_not_exported_and_bad_requests_are_refused(store):
    with pytest.raises(NotFound):
        export_verified(store.database, "nobody", io.StringIO())
    with pytest.raises(InvalidRequest, match="jsonl"):
        export_verified(store.database, "desk", io.StringIO(), "xml")
    # copies inside a version's training data are not verified documents of their own
    store.training.train(TrainRequest(classifier="desk", data=None, with_verified=True))
    assert export_verified(store.database, "desk", io.StringIO()) == 2
