"""Storage behaviour every database must share: run on SQLite and on the real PostgreSQL.

Every test taking ``store`` runs twice (``database_url`` is parametrized over both
backends). The last tests are backend specific: a server schema is never migrated
behind the operator's back, the embedded one always is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError

from tagloop.app import Tagloop
from tagloop.domain.metrics import METRIC_NAMES
from tagloop.domain.records import Mode, Split, VersionStatus
from tagloop.errors import (
    AlreadyExists,
    ConfigurationError,
    DatasetInvalid,
    InvalidRequest,
    NotFound,
    ResourceInUse,
)
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage import migrate
from tagloop.storage.repositories import (
    ClassifierRepository,
    DatasetRepository,
    DocumentRepository,
    JobRepository,
    ModelVersionRepository,
)
from tagloop.storage.tables import (
    Base,
    ClassifierRow,
    DatasetRow,
    EndpointRow,
    EventRow,
    JobRow,
    ModelVersionRow,
)

TICKET_LABELS = ["ACCESS", "BILLING", "EMAIL", "HARDWARE", "NETWORK", "SOFTWARE"]


@pytest.fixture
def store(make_tagloop, database_url):
    return make_tagloop(database_url=database_url)


def row_counts(tagloop) -> dict[str, int]:
    """Rows in every tagloop table."""
    with tagloop.database.reading() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def downgrade(database, revision: str) -> None:
    config = migrate._config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


# ---- migrations ---------------------------------------------------------------------------


def test_migrations_reach_head_and_are_idempotent(store):
    head = migrate.head_revision(store.database)
    assert head is not None
    assert migrate.current_revision(store.database) == head
    assert migrate.upgrade(store.database) == head
    assert migrate.upgrade(store.database) == head
    with store.database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]


def test_the_migrated_schema_is_the_one_the_code_maps(store):
    """Alembic's autogenerate finds nothing to add: migrations and tables.py agree."""
    with store.database.engine.connect() as connection:

        def ours(name, type_, parent_names) -> bool:  # other tables (Procrastinate's) are not ours
            table = name if type_ == "table" else parent_names.get("table_name")
            return table is None or table in Base.metadata.tables or table == "alembic_version"

        options = {"compare_type": True, "include_name": ours}
        context = MigrationContext.configure(connection, opts=options)
        assert compare_metadata(context, Base.metadata) == []


# ---- training records -----------------------------------------------------------------------


def test_training_creates_versions_with_their_records(store, tickets_csv):
    first = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    second = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert (first["version"], second["version"]) == ("v1", "v2")
    assert (first["number"], second["number"]) == (1, 2)
    assert first["status"] == second["status"] == VersionStatus.TRAINED
    assert first["mode"] == "MULTI_CLASS"
    assert list(first["metrics"]) == list(METRIC_NAMES)  # in Comprehend's order, though JSONB keeps none
    assert all(0.0 <= value <= 1.0 for value in first["metrics"].values())
    assert first["metrics"]["Accuracy"] > 0.5
    assert first["labels"] == TICKET_LABELS
    assert first["documents"] == {"train": 372, "test": 42}
    assert first["label_counts"] == dict.fromkeys(TICKET_LABELS, 62)
    assert list(first["label_counts"]) == TICKET_LABELS
    detail = store.catalog.version("desk", "v1")
    assert list(detail["per_label"]) == TICKET_LABELS
    assert all(
        list(figures) == ["precision", "recall", "f1", "support"] for figures in detail["per_label"].values()
    )
    assert len(first["data_fingerprint"]) == 64
    assert first["data_fingerprint"] == second["data_fingerprint"]
    assert first["train_seconds"] > 0

    full = store.catalog.version("desk", "v1")
    assert set(full["library_versions"]) >= {"python", "numpy", "scipy", "scikit-learn", "tagloop"}
    assert all(isinstance(value, str) and value for value in full["library_versions"].values())
    timings = full["timings"]
    expected = {"import_seconds", "fit_seconds", "evaluate_seconds", "save_seconds", "train_seconds"}
    assert expected | {"total_seconds"} <= set(timings)
    assert all(timings[key] >= 0 for key in expected)
    assert timings["total_seconds"] >= timings["train_seconds"]
    assert set(full["per_label"]) == set(TICKET_LABELS)
    assert full["confusion_matrix"]["type"] == "multi_class"
    assert full["parameters"]["test_fraction"] == 0.1
    assert full["parameters"]["sources"] == {"train": str(tickets_csv), "test": None}
    artifact = full["artifact"]
    assert artifact["bytes"] == Path(artifact["path"]).stat().st_size
    assert artifact["sha256"] == hashlib.sha256(Path(artifact["path"]).read_bytes()).hexdigest()
    assert store.catalog.version("desk", "v2")["artifact"]["path"] != artifact["path"]
    assert [v["version"] for v in store.catalog.versions("desk")] == ["v1", "v2"]
    assert store.catalog.classifiers()[0] | {"created_at": None} == {
        "name": "desk",
        "mode": "MULTI_CLASS",
        "label_delimiter": "|",
        "versions": 2,
        "latest_trained_version": "v2",
        "created_at": None,
    }


def test_timestamps_are_timezone_aware_utc(store, tickets_csv):
    before = datetime.now(UTC)
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    after = datetime.now(UTC)
    with store.database.reading() as session:
        classifier = session.scalars(select(ClassifierRow)).one()
        version = session.scalars(select(ModelVersionRow)).one()
        dataset = session.scalars(select(DatasetRow)).one()
        job = session.scalars(select(JobRow)).one()
        stamps = [
            classifier.created_at,
            classifier.updated_at,
            dataset.created_at,
            version.created_at,
            version.started_at,
            version.ended_at,
            job.created_at,
            job.started_at,
            job.ended_at,
        ]
    for stamp in stamps:
        assert stamp is not None
        assert stamp.tzinfo is not None and stamp.utcoffset().total_seconds() == 0
        assert before <= stamp <= after
    assert version.created_at <= version.started_at <= version.ended_at
    summary = store.catalog.version("desk", "v1")
    assert all(summary[key].endswith("+00:00") for key in ("created_at", "started_at", "ended_at"))
    if store.database.dialect == "postgresql":
        with store.database.engine.connect() as connection:
            types = connection.execute(
                text(
                    "SELECT DISTINCT data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND column_name LIKE '%\\_at'"
                )
            ).scalars()
            assert set(types) == {"timestamp with time zone"}


def test_naive_datetimes_are_refused(store, tickets_csv):
    submission = store.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with pytest.raises(StatementError, match="naive datetime"), store.database.transaction() as session:
        ModelVersionRepository(session).set_status(
            submission.version_id,
            VersionStatus.TRAINING.value,
            started_at=datetime.now(),  # naive: the point of the test
        )
    assert store.training.summary(submission.version_id)["status"] == VersionStatus.SUBMITTED


def test_the_same_data_gives_the_same_fingerprint(store, make_tagloop, database_url, tickets, write_csv):
    rows = [list(row) for row in tickets]
    train = store.training.train
    first = train(TrainRequest(classifier="a", data=str(write_csv(rows, "one.csv"))))
    renamed = train(TrainRequest(classifier="b", data=str(write_csv(rows, "other-name.csv"))))
    assert renamed["data_fingerprint"] == first["data_fingerprint"]  # the content counts, not the name
    changed = [*rows[:-1], [rows[-1][0], rows[-1][1] + " (edited)"]]
    edited = train(TrainRequest(classifier="c", data=str(write_csv(changed, "edited.csv"))))
    assert edited["data_fingerprint"] != first["data_fingerprint"]
    relabelled = [*rows[:-1], ["BILLING" if rows[-1][0] != "BILLING" else "EMAIL", rows[-1][1]]]
    moved = train(TrainRequest(classifier="d", data=str(write_csv(relabelled, "relabelled.csv"))))
    assert moved["data_fingerprint"] != first["data_fingerprint"]
    test = write_csv(rows[:40], "test.csv")
    with_test = train(TrainRequest(classifier="e", data=str(write_csv(rows, "one.csv")), test=str(test)))
    assert with_test["data_fingerprint"] != first["data_fingerprint"]
    reseeded = make_tagloop(database_url=database_url, split_seed=7)
    other_split = reseeded.training.train(TrainRequest(classifier="f", data=str(write_csv(rows, "one.csv"))))
    assert other_split["data_fingerprint"] != first["data_fingerprint"]


# ---- nothing written on failure -------------------------------------------------------------


def test_a_bad_row_in_the_middle_writes_nothing(store, tickets, write_csv):
    """A bad row after the first insert batch (2,000 rows) was flushed: all rolled back."""
    before = row_counts(store)
    assert set(before.values()) == {0}
    rows = [[label, f"{text} #{i}"] for i, (label, text) in enumerate(tickets * 6)][:2_500]
    rows[2_299] = ["NETWORK", "   "]
    with pytest.raises(DatasetInvalid) as caught:
        store.training.train(TrainRequest(classifier="fresh", data=str(write_csv(rows, "big.csv"))))
    assert [(issue.line, issue.reason) for issue in caught.value.issues] == [(2_300, "empty text")]
    assert "line 2300: empty text" in caught.value.message
    assert row_counts(store) == before


def test_a_bad_test_file_writes_nothing_either(store, tickets, write_csv):
    before = row_counts(store)
    good = write_csv([list(row) for row in tickets], "good.csv")
    bad_test = write_csv(
        [["NETWORK", "fine"], ["A|B", "two labels in multi-class"], ["EMAIL", "also fine"]], "bad-test.csv"
    )
    with pytest.raises(DatasetInvalid, match="line 2") as caught:
        store.training.train(TrainRequest(classifier="fresh", data=str(good), test=str(bad_test)))
    assert caught.value.source == str(bad_test)
    assert row_counts(store) == before
    with pytest.raises(InvalidRequest, match="no such file"):
        store.training.train(TrainRequest(classifier="fresh", data=str(good), test=str(good) + ".missing"))
    assert row_counts(store) == before


def test_a_rejected_retraining_leaves_the_existing_classifier_as_it_was(store, tickets, write_csv):
    good = write_csv([list(row) for row in tickets], "good.csv")
    store.training.train(TrainRequest(classifier="desk", data=str(good)))
    before = row_counts(store)
    versions_before = store.catalog.versions("desk")
    bad = write_csv([list(row) for row in tickets[:100]] + [["", "no label"]], "bad.csv")
    with pytest.raises(DatasetInvalid, match="missing label"):
        store.training.train(TrainRequest(classifier="desk", data=str(bad)))
    with pytest.raises(InvalidRequest, match="no such file"):
        store.training.train(TrainRequest(classifier="desk", data=str(good) + ".missing"))
    assert row_counts(store) == before
    assert store.catalog.versions("desk") == versions_before


def test_names_and_modes_are_checked_and_refusals_write_nothing(store, tickets_csv):
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), version_name="first"))
    before = row_counts(store)
    with pytest.raises(AlreadyExists, match="first"):
        store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), version_name="first"))
    with pytest.raises(InvalidRequest, match="MULTI_CLASS"):
        store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), mode=Mode.MULTI_LABEL))
    with pytest.raises(InvalidRequest, match="invalid classifier name"):
        store.training.train(TrainRequest(classifier="bad name", data=str(tickets_csv)))
    with pytest.raises(InvalidRequest, match="invalid version name"):
        store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), version_name="-x"))
    assert row_counts(store) == before
    assert store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))["version"] == "v2"


def test_bug_default_version_name_collides_with_a_chosen_name(store, tickets_csv):
    """src/tagloop/storage/repositories.py ModelVersionRepository.add names a version
    ``v<number>`` without checking that a user did not choose that name already: training
    without --version-name then fails with a raw IntegrityError, on every later attempt too."""
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv), version_name="v2"))
    result = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert result["status"] == VersionStatus.TRAINED
    assert result["version"] != "v2"


# ---- repositories ---------------------------------------------------------------------------


def test_model_version_repository(store):
    with store.database.transaction() as session:
        classifier = ClassifierRepository(session).add("repo", Mode.MULTI_CLASS.value, "|")
        other = ClassifierRepository(session).add("other", Mode.MULTI_CLASS.value, "|")
        versions = ModelVersionRepository(session)
        made = [versions.add(classifier.id, None, status="SUBMITTED", recipe="r") for _ in range(3)]
        named = versions.add(classifier.id, "best", status="SUBMITTED", recipe="r")
        elsewhere = versions.add(other.id, None, status="SUBMITTED", recipe="r")
        ids = [row.id for row in made]
        assert [(row.number, row.name) for row in made] == [(1, "v1"), (2, "v2"), (3, "v3")]
        assert (named.number, named.name) == (4, "best")
        assert (elsewhere.number, elsewhere.name) == (1, "v1")  # numbered per classifier
    with store.database.transaction() as session:
        versions = ModelVersionRepository(session)
        assert versions.latest(classifier.id, "TRAINED") is None
        versions.set_status(ids[0], "TRAINED", message="ok", metrics={"Accuracy": 1.0})
        versions.set_status(ids[1], "TRAINED")
        versions.set_status(ids[2], "IN_ERROR", message="boom")
    with store.database.reading() as session:
        versions = ModelVersionRepository(session)
        assert [row.name for row in versions.list(classifier.id)] == ["v1", "v2", "v3", "best"]
        assert versions.latest(classifier.id, "TRAINED").name == "v2"
        assert versions.latest(classifier.id, "IN_ERROR").message == "boom"
        assert versions.find(classifier.id, "best").id == named.id
        assert versions.find(classifier.id, "nope") is None
        assert versions.find(other.id, "v2") is None
        first = versions.get(ids[0])
        assert (first.status, first.message, first.metrics) == ("TRAINED", "ok", {"Accuracy": 1.0})
        with pytest.raises(NotFound):
            versions.get(10_000)
        assert ClassifierRepository(session).find("nope") is None
        with pytest.raises(NotFound, match="no classifier named 'nope'"):
            ClassifierRepository(session).get("nope")
        assert [row.name for row in ClassifierRepository(session).list()] == ["other", "repo"]


def test_document_repository_keeps_id_order_streams_texts_and_moves_splits(store):
    rows = [(f"document number {i}", ["B", "A"] if i % 3 == 0 else [f"L{i % 4}"]) for i in range(25)]
    with store.database.transaction() as session:
        classifier = ClassifierRepository(session).add("docs", Mode.MULTI_LABEL.value, "|")
        dataset = DatasetRepository(session).add(classifier.id, "memory", "jsonl")
        other = DatasetRepository(session).add(classifier.id, "other", "jsonl")
        documents = DocumentRepository(session)
        documents.add_many([])  # nothing to insert: no error
        documents.add_many(
            {
                "classifier_id": classifier.id,
                "dataset_id": dataset.id,
                "text": text_,
                "labels": labels,
                "origin": "import",
                "split": Split.TRAIN.value,
                "line": line,
            }
            for line, (text_, labels) in enumerate(rows, start=1)
        )
        documents.add_many(
            [
                {
                    "classifier_id": classifier.id,
                    "dataset_id": other.id,
                    "text": "elsewhere",
                    "labels": ["Z"],
                    "origin": "import",
                    "split": Split.TRAIN.value,
                    "line": 1,
                }
            ]
        )
    with store.database.transaction() as session:
        documents = DocumentRepository(session)
        listed = documents.labels(dataset.id)
        ids = [id_ for id_, _ in listed]
        assert ids == sorted(ids) and len(set(ids)) == 25
        assert [labels for _, labels in listed] == [tuple(labels) for _, labels in rows]  # order kept
        moved = ids[1::5]
        documents.set_split(moved, Split.TEST, chunk=2)
        assert documents.count(dataset.id, Split.TEST) == len(moved) == 5
        assert documents.count(dataset.id, Split.TRAIN) == 20
        assert documents.count(other.id, Split.TRAIN) == 1
    with store.database.reading() as session:
        documents = DocumentRepository(session)
        assert [id_ for id_, _ in documents.labels(dataset.id, Split.TEST)] == moved
        train_ids = [id_ for id_, _ in documents.labels(dataset.id, Split.TRAIN)]
        assert train_ids == [id_ for id_ in ids if id_ not in moved]
        stream = documents.texts(dataset.id, Split.TRAIN, chunk=3)
        assert isinstance(stream, Iterator) and not isinstance(stream, list)
        assert next(stream) == "document number 0"
        rest = list(stream)
        expected = [text_ for i, (text_, _) in enumerate(rows) if ids[i] not in moved]
        assert ["document number 0", *rest] == expected
        assert list(documents.texts(dataset.id, Split.TEST)) == [rows[i][0] for i in range(1, 25, 5)]
        assert list(documents.texts(dataset.id, Split.POOL)) == []
        assert DatasetRepository(session).get(dataset.id).source == "memory"
        with pytest.raises(NotFound):
            DatasetRepository(session).get(10_000)


# ---- deleting -------------------------------------------------------------------------------


def test_deleting_a_version_and_a_classifier(store, tickets_csv):
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    submitted = store.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    v1 = store.catalog.version("desk", "v1")
    with pytest.raises(ResourceInUse, match="SUBMITTED"):
        store.training.delete_version("desk", "v3")
    with pytest.raises(NotFound):
        store.training.delete_version("desk", "v9")
    store.training.delete_version("desk", "v1")
    assert not Path(v1["artifact"]["path"]).exists()
    assert [v["version"] for v in store.catalog.versions("desk")] == ["v2", "v3"]
    name, _ = store.predictions.model("desk")
    assert name == "v2"
    counts = row_counts(store)
    assert counts["model_versions"] == 2 and counts["datasets"] == 3
    with store.database.reading() as session:
        job_links = session.execute(select(JobRow.classifier_id, JobRow.version_id)).all()
    assert sum(1 for _, version_id in job_links if version_id is None) == 1  # v1's job, unlinked

    with store.database.transaction() as session:
        classifiers = ClassifierRepository(session)
        classifiers.delete(classifiers.get("desk"))
    counts = row_counts(store)
    assert counts["classifiers"] == counts["datasets"] == counts["documents"] == 0
    assert counts["model_versions"] == 0
    with store.database.reading() as session:
        job = session.get_one(JobRow, submitted.job_id)
        assert (job.classifier_id, job.version_id) == (None, None)  # job history outlives it
    assert store.catalog.classifiers() == []


def test_deleting_a_classifier_takes_its_versions_documents_and_files(store, tickets_csv):
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    store.training.train(TrainRequest(classifier="other", data=str(tickets_csv)))
    job = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))["job_id"]
    files = Path(store.catalog.version("desk", "v1")["artifact"]["path"]).parent.parent
    assert files.is_dir()
    created = store.endpoints.create("help", "desk", "v2")
    with pytest.raises(ResourceInUse, match=r"served by endpoint\(s\) help: delete the endpoint"):
        store.training.delete_classifier("desk")
    store.endpoints.delete("help")
    store.queue.run_now(created["job_id"])
    with store.database.transaction() as session:  # a job still to run on the classifier
        classifier_id = ClassifierRepository(session).get("desk").id
        pending = JobRepository(session).add("batch", {}, classifier_id=classifier_id).id
    with pytest.raises(ResourceInUse, match=f"used by job\\(s\\) {pending}"):
        store.training.delete_classifier("desk")
    with store.database.transaction() as session:
        JobRepository(session).stop_family(pending)
    deleted = store.training.delete_classifier("desk")
    assert deleted == {"classifier": "desk", "versions": 2, "documents": 828}  # two imports of 414
    counts = row_counts(store)
    assert (counts["classifiers"], counts["model_versions"], counts["documents"]) == (1, 1, 414)
    assert not files.exists()
    assert [c["name"] for c in store.catalog.classifiers()] == ["other"]
    assert store.jobs.show(job)["classifier"] is None  # job history outlives it
    with pytest.raises(NotFound, match="no classifier named 'desk'"):
        store.training.delete_classifier("desk")
    submitted = store.training.submit(TrainRequest(classifier="other", data=str(tickets_csv)))
    with pytest.raises(ResourceInUse, match=r"versions in training: v2 \(SUBMITTED\)"):
        store.training.delete_classifier("other")
    store.jobs.stop(submitted.job_id)
    store.training.delete_classifier("other")
    assert row_counts(store)["documents"] == 0


def test_deleting_the_last_version_deletes_the_classifier_only_when_asked(store, tickets_csv):
    for name in ("kept", "dropped"):
        store.training.train(TrainRequest(classifier=name, data=str(tickets_csv)))
        store.training.train(TrainRequest(classifier=name, data=str(tickets_csv)))
    store.training.delete_version("kept", "v1")
    store.training.delete_version("kept", "v2")
    assert [(c["name"], c["versions"]) for c in store.catalog.classifiers()][-1] == ("kept", 0)
    store.training.delete_version("dropped", "v1", remove_empty_classifier=True)  # not the last
    assert [c["name"] for c in store.catalog.classifiers()] == ["dropped", "kept"]
    store.training.delete_version("dropped", "v2", remove_empty_classifier=True)  # the last: it goes
    assert [c["name"] for c in store.catalog.classifiers()] == ["kept"]
    assert row_counts(store)["documents"] == 828  # kept's two imports


def test_ids_are_found_by_any_unique_prefix_with_like_wildcards_taken_literally(store):
    with store.database.transaction() as session:
        jobs = JobRepository(session)
        for job_id in ("ab_1", "abc%2", "abxx", "ABzz", "b\\x"):
            jobs.add("batch", {}, id=job_id)
    with store.database.reading() as session:
        jobs = JobRepository(session)
        assert jobs.ids_starting("ab_") == ["ab_1"]  # `_` is no wildcard
        assert jobs.ids_starting("abc%") == ["abc%2"]  # nor is `%`
        assert jobs.ids_starting("ab") == ["ab_1", "abc%2", "abxx"]  # case counts, on SQLite too
        assert jobs.ids_starting("b\\") == ["b\\x"]
        assert jobs.ids_starting("a", limit=2) == ["ab_1", "abc%2"]
        assert jobs.ids_starting("AB") == ["ABzz"]
    assert store.jobs.resolve("abx") == "abxx"
    assert store.jobs.resolve("ab_1") == "ab_1"
    with pytest.raises(InvalidRequest) as caught:
        store.jobs.resolve("ab")
    assert caught.value.message == (
        "'ab' is the start of several job ids (ab_1, abc%2, abxx): give more characters"
    )
    with pytest.raises(NotFound, match="no job 'zz'"):
        store.jobs.resolve("zz")
    with pytest.raises(NotFound, match="no job '%'"):
        store.jobs.resolve("%")
    first, second = (store.keys.create(name, "classify")["access_key_id"] for name in ("one", "two"))
    assert store.keys.resolve(first[:8]) == first and store.keys.resolve(second) == second
    with pytest.raises(InvalidRequest, match="several access key ids"):
        store.keys.resolve("TL")
    with pytest.raises(NotFound, match="no access key 'TL_'"):
        store.keys.resolve("TL_")


# ---- schema checks at start-up -------------------------------------------------------------


def test_an_out_of_date_server_schema_is_refused_not_migrated(fresh_postgres, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=fresh_postgres)
    with pytest.raises(ConfigurationError, match=r"at nothing .* run `tagloop db upgrade`"):
        Tagloop(settings)
    unchecked = Tagloop(settings, check_schema=False)
    try:
        assert migrate.current_revision(unchecked.database) is None  # refused, not migrated
        with unchecked.database.engine.connect() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()")
            ).scalar()
        assert tables == 0
        head = migrate.upgrade(unchecked.database)
        downgrade(unchecked.database, "0003")
        with pytest.raises(ConfigurationError, match=f"at 0003 and this tagloop needs {head}") as caught:
            Tagloop(Settings(data_dir=tmp_path / "data", database_url=fresh_postgres))
        assert "tagloop db upgrade" in caught.value.message
        assert migrate.current_revision(unchecked.database) == "0003"
        assert migrate.upgrade(unchecked.database) == head
    finally:
        unchecked.close()
    ready = Tagloop(Settings(data_dir=tmp_path / "data", database_url=fresh_postgres))
    try:
        assert ready.catalog.classifiers() == []
    finally:
        ready.close()


def test_the_embedded_database_is_upgraded_automatically(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    created = Tagloop(settings)
    head = migrate.head_revision(created.database)
    try:
        assert migrate.current_revision(created.database) == head
        downgrade(created.database, "0003")
        assert migrate.current_revision(created.database) == "0003"
    finally:
        created.close()
    reopened = Tagloop(Settings(data_dir=tmp_path / "data"))
    try:
        assert migrate.current_revision(reopened.database) == head
        downgrade(reopened.database, "base")
    finally:
        reopened.close()
    again = Tagloop(Settings(data_dir=tmp_path / "data"))
    try:
        assert migrate.current_revision(again.database) == head
        assert again.catalog.classifiers() == []
    finally:
        again.close()


def test_migration_0007_records_the_best_label_of_the_predictions_logged_before(store):
    """Rows logged before 0007 get their ``top_label`` from their result; text may then be NULL."""
    downgrade(store.database, "0006")
    as_json = "CAST(:result AS jsonb)" if store.database.dialect == "postgresql" else ":result"
    logged = [
        ("a", '{"Classes": [{"Name": "NETWORK", "Score": 0.9}, {"Name": "EMAIL", "Score": 0.1}]}'),
        ("b", '{"Labels": [{"Name": "BILLING", "Score": 0.8}]}'),
        ("c", '{"Labels": []}'),
    ]
    with store.database.engine.begin() as connection:
        for prediction_id, result in logged:
            connection.execute(
                text(
                    "INSERT INTO predictions (id, endpoint, text, result, top_score, created_at) "
                    f"VALUES (:id, 'desk', 'some text', {as_json}, 0.5, :created_at)"
                ),
                {"id": prediction_id, "result": result, "created_at": datetime(2026, 11, 30, tzinfo=UTC)},
            )
    migrate.upgrade(store.database)
    with store.database.engine.begin() as connection:
        labels = connection.execute(text("SELECT id, top_label FROM predictions ORDER BY id")).all()
        assert [tuple(row) for row in labels] == [("a", "NETWORK"), ("b", "BILLING"), ("c", None)]
        connection.execute(text("UPDATE predictions SET text = NULL WHERE id = 'a'"))  # now allowed


def test_migration_0010_moves_each_endpoints_pool_watermark_from_its_events_onto_its_row(store, tickets_csv):
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    store.endpoints.create("desk-ep", "desk", "v1")
    store.endpoints.create("quiet-ep", "desk", "v1")
    downgrade(store.database, "0009")
    as_json = "CAST(:payload AS jsonb)" if store.database.dialect == "postgresql" else ":payload"
    events = [  # oldest first: the newest pool.fed / pool.rate of an endpoint is its watermark
        ("pool.rate", "desk-ep", '{"rate": 0.5, "through": "2026-11-30T10:00:00+00:00", "through_id": ""}'),
        (
            "pool.fed",
            "desk-ep",
            '{"examined": 3, "through": "2026-11-30T11:00:00+00:00", "through_id": "p-3"}',
        ),
        ("drift.detected", "desk-ep", '{"psi": 0.4}'),
    ]
    with store.database.engine.begin() as connection:
        for kind, endpoint, payload in events:
            connection.execute(
                text(
                    "INSERT INTO events (kind, endpoint, payload, created_at) "
                    f"VALUES (:kind, :endpoint, {as_json}, :created_at)"
                ),
                {"kind": kind, "endpoint": endpoint, "payload": payload, "created_at": datetime.now(UTC)},
            )
    migrate.upgrade(store.database)
    with store.database.reading() as session:
        rows = {row.name: row for row in session.scalars(select(EndpointRow))}
        kinds = sorted(session.scalars(select(EventRow.kind)))
    assert (rows["desk-ep"].pool_through_at, rows["desk-ep"].pool_through_id) == (
        datetime(2026, 11, 30, 11, tzinfo=UTC),
        "p-3",
    )
    assert (rows["quiet-ep"].pool_through_at, rows["quiet-ep"].pool_through_id) == (None, None)
    assert "pool.fed" not in kinds and {"pool.rate", "drift.detected"} <= set(kinds)
