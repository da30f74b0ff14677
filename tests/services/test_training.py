"""Training lifecycle through the services: failures and stops never touch what serves."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from tagloop.domain.records import Mode, Split, VersionStatus
from tagloop.errors import DatasetInvalid, NotFound, ResourceInUse, Stopped
from tagloop.services.training import TrainRequest
from tagloop.storage.repositories import DocumentRepository, JobRepository
from tagloop.storage.tables import ClassifierRow, ModelVersionRow

TICKET_LABELS = ["ACCESS", "BILLING", "EMAIL", "HARDWARE", "NETWORK", "SOFTWARE"]


def split_documents(tagloop, version_id: int, split: Split) -> list[tuple[str, tuple[str, ...]]]:
    """(text, labels) of one split of a version's data, in id order."""
    with tagloop.database.reading() as session:
        row = session.get_one(ModelVersionRow, version_id)
        dataset_id = row.test_dataset_id if split is Split.TEST else row.train_dataset_id
        documents = DocumentRepository(session)
        labels = [labels for _, labels in documents.labels(dataset_id, split)]
        return list(zip(documents.texts(dataset_id, split), labels, strict=True))


def version_id(tagloop, classifier: str, version: str) -> int:
    with tagloop.database.reading() as session:
        row = session.scalars(
            select(ModelVersionRow)
            .join(ClassifierRow, ClassifierRow.id == ModelVersionRow.classifier_id)
            .where(ClassifierRow.name == classifier, ModelVersionRow.name == version)
        ).one()
        return row.id


def model_files(tagloop) -> list[str]:
    root = Path(tagloop.artifacts.root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---- lifecycle ------------------------------------------------------------------------------


def test_submit_then_run_moves_submitted_training_trained(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    submitted = tagloop.training.summary(submission.version_id)
    assert submitted["status"] == VersionStatus.SUBMITTED
    assert submitted["started_at"] is None and submitted["metrics"] is None
    assert submitted["documents"] == {"train": 372, "test": 42}
    assert tagloop.jobs.show(submission.job_id)["status"] == "SUBMITTED"
    assert model_files(tagloop) == []

    seen: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        seen.append((fraction, tagloop.training.summary(submission.version_id)["status"]))

    result = tagloop.training.run(submission.version_id, progress)
    assert result["status"] == VersionStatus.TRAINED
    assert {status for fraction, status in seen if fraction < 1.0} == {VersionStatus.TRAINING}
    assert seen[-1][0] == 1.0
    assert sorted(fraction for fraction, _ in seen) == [fraction for fraction, _ in seen]
    assert result["started_at"] <= result["ended_at"]
    assert result["metrics"]["Accuracy"] > 0.5
    assert model_files(tagloop) == [
        f"models/1/{submission.version_id}/confusion_matrix.json",
        f"models/1/{submission.version_id}/model.npz",
        f"models/1/{submission.version_id}/test_predictions.npz",  # the scored test documents
    ]
    with pytest.raises(ResourceInUse, match="TRAINED"):
        tagloop.training.run(submission.version_id)  # a version trains once


def test_the_training_job_runs_the_same_lifecycle(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    seen: list[float] = []
    tagloop.queue.run_now(submission.job_id, lambda fraction, message: seen.append(fraction))
    assert tagloop.training.summary(submission.version_id)["status"] == VersionStatus.TRAINED
    job = tagloop.jobs.show(submission.job_id)
    assert job["status"] == "COMPLETED" and job["progress"] == 1.0
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_a_training_jobs_recorded_progress_moves_through_its_phases(make_tagloop, tickets_csv, monkeypatch):
    """What the job's row says (jobs show, GET /v1/jobs/{id}) while it trains: every report is
    written at once here (no throttle), and read back from the database at the next report."""
    from tagloop.jobs import runner

    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)
    tagloop = make_tagloop()
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    recorded: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        job = tagloop.jobs.show(submission.job_id)  # what the previous report wrote
        recorded.append((job["progress"], job["progress_message"] or ""))

    tagloop.queue.run_now(submission.job_id, progress)
    fractions = [fraction for fraction, _ in recorded]
    assert fractions == sorted(fractions)
    assert len({fraction for fraction in fractions if 0.0 < fraction < 1.0}) >= 20
    phases = [message.split(":")[0] for _, message in recorded]
    for phase in ("counting words", "fitting 6 linear models (6 labels each)", "evaluating"):
        assert phase in phases
    assert phases.index("counting words") < phases.index("fitting 6 linear models (6 labels each)")
    assert tagloop.jobs.show(submission.job_id)["progress"] == 1.0


def break_artifacts(make_tagloop, tmp_path, **settings):
    """A Tagloop on the same database whose artifact store cannot be written."""
    (tmp_path / "blocker").write_text("a regular file where the artifact folder should be")
    return make_tagloop(artifacts_url=str(tmp_path / "blocker" / "artifacts"), **settings)


def test_a_crash_inside_run_leaves_in_error_and_the_trained_version_serving(
    make_tagloop, database_url, tickets_csv, tmp_path
):
    tagloop = make_tagloop(database_url=database_url)
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    v1_before = tagloop.catalog.version("desk", "v1")
    files_before = model_files(tagloop)
    broken = break_artifacts(make_tagloop, tmp_path, database_url=database_url)
    submission = broken.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with pytest.raises(OSError):
        broken.training.run(submission.version_id)
    v2 = tagloop.catalog.version("desk", "v2")
    assert v2["status"] == VersionStatus.IN_ERROR
    assert v2["message"].startswith("internal error: ") and "Not a directory" in v2["message"]
    assert v2["ended_at"] is not None
    assert v2["metrics"] is None and v2["artifact"]["path"] is None
    assert tagloop.catalog.version("desk", "v1") == v1_before
    assert model_files(tagloop) == files_before
    name, model = tagloop.predictions.model("desk")
    assert name == "v1"
    assert next(tagloop.predictions.classify(model, ["printer jammed"])).labels[0] == "HARDWARE"
    assert tagloop.catalog.classifiers()[0]["latest_trained_version"] == "v1"
    with pytest.raises(ResourceInUse, match="IN_ERROR"):
        tagloop.training.run(submission.version_id)


def test_bug_a_crashed_training_job_is_retried_although_its_version_is_in_error(
    make_tagloop, tickets_csv, tmp_path
):
    """src/tagloop/services/training.py TrainingService.run marks the version IN_ERROR and
    re-raises the internal error; src/tagloop/jobs/runner.py JobRunner.execute then puts the
    job back to SUBMITTED for another attempt. That attempt can never train (the version is
    IN_ERROR) and ends the job FAILED with "version v1 is IN_ERROR, not SUBMITTED", hiding
    the real cause; meanwhile the job shows SUBMITTED for a version that already failed."""
    broken = break_artifacts(make_tagloop, tmp_path)
    submission = broken.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with pytest.raises(OSError):
        broken.queue.run_now(submission.job_id)
    broken.queue.run_until_idle()
    job = broken.jobs.show(submission.job_id)
    assert job["status"] == "FAILED"
    assert "Not a directory" in job["error"]
    assert broken.training.summary(submission.version_id)["status"] == VersionStatus.IN_ERROR


def test_stop_requested_before_training_stops_it(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert tagloop.jobs.stop(submission.job_id)["status"] == "STOPPED"
    stopped = tagloop.training.summary(submission.version_id)
    assert stopped["status"] == VersionStatus.STOPPED and "stop" in stopped["message"]
    with pytest.raises(ResourceInUse):
        tagloop.training.run(submission.version_id)  # a stopped version is never trained after all


def test_should_stop_stops_a_running_training(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    files = model_files(tagloop)
    other = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with pytest.raises(Stopped):
        tagloop.training.run(other.version_id, should_stop=lambda: True)
    stopped = tagloop.training.summary(other.version_id)
    assert stopped["status"] == VersionStatus.STOPPED
    assert stopped["message"] == "training stopped on request"
    calls = []

    def later() -> bool:  # stops partway through fitting, not before it starts
        calls.append(1)
        return len(calls) > 1

    third = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with pytest.raises(Stopped):
        tagloop.training.run(third.version_id, should_stop=later)
    assert tagloop.training.summary(third.version_id)["status"] == VersionStatus.STOPPED
    assert model_files(tagloop) == files  # nothing saved for the stopped versions
    assert tagloop.predictions.model("desk")[0] == "v1"


def test_stopping_a_version_finds_its_job_however_many_jobs_came_after(
    make_tagloop, database_url, tickets_csv, add_newer_jobs
):
    tagloop = make_tagloop(database_url=database_url)
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    add_newer_jobs(tagloop, 1_001)
    assert submission.job_id not in {job["id"] for job in tagloop.jobs.list(limit=1_000)}
    assert tagloop.training.stop("desk", "v1") == submission.job_id
    assert tagloop.jobs.show(submission.job_id)["status"] == "STOPPED"
    assert tagloop.training.summary(submission.version_id)["status"] == VersionStatus.STOPPED
    assert tagloop.training.stop("desk", "v1") == submission.job_id  # ended already: nothing to do
    with pytest.raises(NotFound, match="no version 'v9'"):
        tagloop.training.stop("desk", "v9")


def test_a_running_training_asked_to_stop_shows_stop_requested_then_stopped(
    make_tagloop, database_url, tickets_csv
):
    tagloop = make_tagloop(database_url=database_url)
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with tagloop.database.transaction() as session:  # a worker elsewhere has claimed the job
        assert JobRepository(session).claim("elsewhere", lease_seconds=60).id == submission.job_id
    assert tagloop.jobs.stop(submission.job_id)["status"] == "STOP_REQUESTED"
    assert tagloop.training.summary(submission.version_id)["status"] == VersionStatus.STOP_REQUESTED
    with pytest.raises(Stopped):  # what the worker then runs stops before fitting anything
        tagloop.training.run(submission.version_id)
    stopped = tagloop.training.summary(submission.version_id)
    assert stopped["status"] == VersionStatus.STOPPED and stopped["message"] == "training stopped on request"
    assert model_files(tagloop) == []


def test_a_retried_training_job_submits_its_version_again_and_trains_it(
    make_tagloop, database_url, tickets_csv
):
    tagloop = make_tagloop(database_url=database_url)
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    tagloop.jobs.stop(submission.job_id)
    assert tagloop.training.summary(submission.version_id)["status"] == VersionStatus.STOPPED
    assert tagloop.jobs.retry(submission.job_id)["status"] == "SUBMITTED"
    again = tagloop.training.summary(submission.version_id)
    assert again["status"] == VersionStatus.SUBMITTED
    assert again["message"] is None and again["ended_at"] is None
    tagloop.queue.run_now(submission.job_id)
    assert tagloop.jobs.show(submission.job_id)["status"] == "COMPLETED"
    assert tagloop.training.summary(submission.version_id)["status"] == VersionStatus.TRAINED
    with pytest.raises(ResourceInUse, match="only FAILED or STOPPED jobs can be retried"):
        tagloop.jobs.retry(submission.job_id)
    assert tagloop.training.summary(submission.version_id)["status"] == VersionStatus.TRAINED


# ---- test split -----------------------------------------------------------------------------


def test_an_automatic_stratified_test_split_holds_out_ten_percent(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    result = tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert result["documents"] == {"train": 372, "test": 42}  # 69 per label: 7 held out of each
    first = version_id(tagloop, "desk", "v1")
    test = split_documents(tagloop, first, Split.TEST)
    train = split_documents(tagloop, first, Split.TRAIN)
    assert Counter(labels[0] for _, labels in test) == dict.fromkeys(TICKET_LABELS, 7)
    assert Counter(labels[0] for _, labels in train) == dict.fromkeys(TICKET_LABELS, 62)
    assert result["label_counts"] == dict.fromkeys(TICKET_LABELS, 62)
    assert not {text for text, _ in test} & {text for text, _ in train}
    parameters = tagloop.catalog.version("desk", "v1")["parameters"]
    assert (parameters["test_fraction"], parameters["split_seed"]) == (0.1, 0)

    again = tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert (
        split_documents(tagloop, version_id(tagloop, "desk", "v2"), Split.TEST) == test
    )  # the same seed, the same split
    assert again["data_fingerprint"] == result["data_fingerprint"]


def test_the_split_follows_its_settings(make_tagloop, tickets_csv):
    default = make_tagloop()
    default.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    quarter = make_tagloop(test_fraction=0.25)
    result = quarter.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert result["documents"] == {"train": 6 * 52, "test": 6 * 17}
    reseeded = make_tagloop(split_seed=1)
    reseeded.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    first = {text for text, _ in split_documents(default, version_id(default, "desk", "v1"), Split.TEST)}
    other = {text for text, _ in split_documents(reseeded, version_id(reseeded, "desk", "v3"), Split.TEST)}
    assert len(first) == len(other) == 42 and first != other


def test_an_explicit_test_file_is_used_as_is(make_tagloop, tickets, write_csv):
    tagloop = make_tagloop()
    train = write_csv([list(row) for row in tickets[:300]], "train.csv")
    test = write_csv([list(row) for row in tickets[300:]], "test.csv")
    result = tagloop.training.train(TrainRequest(classifier="desk", data=str(train), test=str(test)))
    assert result["documents"] == {"train": 300, "test": 114}
    parameters = tagloop.catalog.version("desk", "v1")["parameters"]
    assert parameters["test_fraction"] is None and parameters["sources"]["test"] == str(test)
    test_split = split_documents(tagloop, version_id(tagloop, "desk", "v1"), Split.TEST)
    assert [text for text, _ in test_split] == [t for _, t in tickets[300:]]


def test_an_explicit_test_file_sharing_texts_with_training_is_kept_as_given_with_a_warning(
    make_tagloop, tickets, write_csv
):
    tagloop = make_tagloop()
    train = write_csv([list(row) for row in tickets[:300]], "train.csv")
    test = write_csv([list(row) for row in tickets[295:]], "test.csv")  # 5 texts in both
    result = tagloop.training.train(TrainRequest(classifier="desk", data=str(train), test=str(test)))
    assert result["documents"] == {"train": 300, "test": 119}  # the user's files, as given
    assert any(
        "5 training document(s) have the text of a test document" in warning and "optimistic" in warning
        for warning in result["warnings"]
    )
    train_split = split_documents(tagloop, version_id(tagloop, "desk", "v1"), Split.TRAIN)
    assert len(train_split) == 300


def test_a_split_made_by_tagloop_never_trains_on_a_test_text(make_tagloop, tickets, write_csv):
    tagloop = make_tagloop()
    doubled = write_csv([list(row) for row in tickets] + [list(row) for row in tickets[:60]], "twice.csv")
    result = tagloop.training.train(TrainRequest(classifier="desk", data=str(doubled)))
    first = version_id(tagloop, "desk", "v1")
    test = {text for text, _ in split_documents(tagloop, first, Split.TEST)}
    train = [text for text, _ in split_documents(tagloop, first, Split.TRAIN)]
    assert not test & set(train)
    dropped = len(tickets) + 60 - len(test) - len(train)
    assert dropped > 0 and result["documents"]["train"] == len(train)
    assert any(f"{dropped:,} training document(s) with the text of a test" in w for w in result["warnings"])


# ---- warnings, never refusals ---------------------------------------------------------------


def test_labels_too_rare_to_split_stay_in_training_with_a_warning(make_tagloop, tickets, write_csv):
    rows = [list(row) for row in tickets]
    rows += [["PRINTING", f"the plotter prints stripes on sheet {i}"] for i in range(2)]
    rows += [["FAX", "the fax machine beeps all night"]]
    rows += [["SCANNER", f"the scanner {i} jams on thick paper"] for i in range(3)]
    tagloop = make_tagloop()
    result = tagloop.training.train(TrainRequest(classifier="desk", data=str(write_csv(rows))))
    assert result["status"] == VersionStatus.TRAINED
    assert {"PRINTING", "FAX", "SCANNER"} <= set(result["labels"])
    assert (result["label_counts"]["PRINTING"], result["label_counts"]["FAX"]) == (2, 1)
    assert result["label_counts"]["SCANNER"] == 2  # three documents: one is held out
    assert result["documents"] == {"train": 372 + 5, "test": 42 + 1}
    warnings = " ".join(result["warnings"])
    assert "FAX (1)" in warnings and "PRINTING (2)" in warnings and "SCANNER (3)" in warnings
    assert "TAGLOOP_MIN_DOCS_PER_LABEL" in warnings
    assert "kept in training only: FAX, PRINTING" in warnings


def test_rare_labels_are_a_warning_not_an_error(make_tagloop, tickets_csv, write_csv):
    strict = make_tagloop(min_docs_per_label=70)
    result = strict.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert result["status"] == VersionStatus.TRAINED
    assert any("6 labels have fewer than 70 documents" in w for w in result["warnings"])
    tiny = write_csv(
        [["A", "the red apple pie"], ["A", "the red apple tart"], ["B", "the blue berry pie"]], "tiny.csv"
    )
    small = strict.training.train(TrainRequest(classifier="tiny", data=str(tiny)))
    assert small["status"] == VersionStatus.TRAINED
    assert small["documents"] == {"train": 3, "test": 0}
    assert small["metrics"] is None
    assert "no test documents: metrics were not computed" in small["warnings"]


def test_test_labels_unseen_in_training_warn(make_tagloop, tickets, write_csv):
    tagloop = make_tagloop()
    test = write_csv([["NETWORK", "vpn down"], ["FACILITIES", "the lift is broken"]], "test.csv")
    result = tagloop.training.train(
        TrainRequest(classifier="desk", data=str(write_csv([list(r) for r in tickets])), test=str(test))
    )
    assert result["status"] == VersionStatus.TRAINED
    assert "test labels with no training documents: FACILITIES" in result["warnings"]
    assert "FACILITIES" not in result["labels"]


def test_single_label_multi_class_is_refused(make_tagloop, write_csv):
    tagloop = make_tagloop()
    with pytest.raises(DatasetInvalid, match="at least 2 labels"):
        tagloop.training.train(TrainRequest(classifier="one", data=str(write_csv([["A", "x"], ["A", "y"]]))))
    assert tagloop.catalog.classifiers() == []


# ---- input formats --------------------------------------------------------------------------


def test_gzip_jsonl_and_mapped_csv_inputs(make_tagloop, tickets, tmp_path):
    with gzip.open(tmp_path / "t.csv.gz", "wt", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    (tmp_path / "t.jsonl").write_text(
        "\n".join(json.dumps({"text": text, "labels": [label]}) for label, text in tickets), encoding="utf-8"
    )
    with gzip.open(tmp_path / "t.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps({"text": text, "label": label}) for label, text in tickets))
    with (tmp_path / "mapped.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "summary", "description", "project"])
        for number, (label, text) in enumerate(tickets):
            writer.writerow([number, text[:20], text[20:], label])
    tagloop = make_tagloop()
    results = {}
    for name, request in {
        "gz": TrainRequest(classifier="gz", data=str(tmp_path / "t.csv.gz")),
        "jl": TrainRequest(classifier="jl", data=str(tmp_path / "t.jsonl")),
        "jlgz": TrainRequest(classifier="jlgz", data=str(tmp_path / "t.jsonl.gz")),
        "mapped": TrainRequest(
            classifier="mapped",
            data=str(tmp_path / "mapped.csv"),
            text_columns=("summary", "description"),
            label_column="project",
        ),
    }.items():
        results[name] = result = tagloop.training.train(request)
        assert result["status"] == VersionStatus.TRAINED, name
        assert result["documents"] == {"train": 372, "test": 42}, name
        assert result["labels"] == TICKET_LABELS, name
    # the same documents whatever the file looks like
    assert results["gz"]["data_fingerprint"] == results["jl"]["data_fingerprint"]
    assert results["jl"]["data_fingerprint"] == results["jlgz"]["data_fingerprint"]
    mapped = version_id(tagloop, "mapped", "v1")
    stored = {text for split in Split for text, _ in split_documents(tagloop, mapped, split)}
    assert len(stored) == len(tickets)
    assert all((text[:20] + "\n" + text[20:]).strip() in stored for _, text in tickets)  # columns joined


def test_bad_rows_in_other_formats_name_their_lines(make_tagloop, tickets, tmp_path):
    lines = [json.dumps({"text": text, "labels": [label]}) for label, text in tickets[:30]]
    lines[9] = "{not json"
    lines[19] = json.dumps({"text": "", "labels": ["NETWORK"]})
    (tmp_path / "bad.jsonl").write_text("\n".join(lines), encoding="utf-8")
    tagloop = make_tagloop()
    with pytest.raises(DatasetInvalid) as caught:
        tagloop.training.train(TrainRequest(classifier="jl", data=str(tmp_path / "bad.jsonl")))
    assert [issue.line for issue in caught.value.issues] == [10, 20]
    assert caught.value.issues[0].reason.startswith("invalid JSON")
    with (tmp_path / "mapped.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["summary", "description", "project"])
        writer.writerow(["vpn", "drops every hour", "NETWORK"])
        writer.writerow(["vpn", "drops", "NETWORK", "extra"])
    with pytest.raises(DatasetInvalid, match="line 3: expected 3 columns"):
        tagloop.training.train(
            TrainRequest(
                classifier="mapped",
                data=str(tmp_path / "mapped.csv"),
                text_columns=("summary", "description"),
                label_column="project",
            )
        )
    assert tagloop.catalog.classifiers() == []


def test_multi_label_training(make_tagloop, write_csv):
    rows = []
    for i in range(30):
        rows.append(["NET|HW", f"the router {i} and the laptop dock {i} both fail"])
        rows.append(["NET", f"the vpn tunnel {i} drops"])
        rows.append(["HW", f"the keyboard {i} is broken"])
    tagloop = make_tagloop()
    result = tagloop.training.train(
        TrainRequest(classifier="ml", data=str(write_csv(rows)), mode=Mode.MULTI_LABEL)
    )
    assert result["mode"] == "MULTI_LABEL" and result["labels"] == ["HW", "NET"]
    assert result["documents"]["train"] + result["documents"]["test"] == 90
    assert result["label_counts"]["HW"] + result["label_counts"]["NET"] > result["documents"]["train"]
    assert tagloop.catalog.version("ml", "v1")["confusion_matrix"]["type"] == "multi_label"


# ---- self-training: the classifier's pool as unlabelled text ------------------------------------


def test_self_training_learns_from_the_classifiers_pool_and_plain_training_ignores_it(
    make_tagloop, tickets, write_csv
):
    from tagloop.recipes.tfidf_linear import TfidfLinearParams

    tagloop = make_tagloop()
    labelled, pooled = tickets[::3], [row for i, row in enumerate(tickets) if i % 3]
    data = write_csv([list(row) for row in labelled], "labelled.csv")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data), version_name="plain"))
    # words only the pool has: a plain model never sees them, a self-trained one learns them
    pool_only = "zyxolent" if "zyxolent" not in " ".join(t for _, t in labelled) else "qqwwee"
    pool_rows = [[label, f"{text} {pool_only}"] for label, text in pooled]
    report = tagloop.pool.add("desk", str(write_csv(pool_rows, "pool.csv")))
    assert report["added"] == len(pooled)
    again = tagloop.training.train(TrainRequest(classifier="desk", data=str(data), version_name="again"))
    on = tagloop.training.train(
        TrainRequest(
            classifier="desk",
            data=str(data),
            version_name="self",
            params=TfidfLinearParams(self_training=True),
        )
    )
    assert tagloop.catalog.version("desk", "plain")["parameters"]["self_training"] is False
    assert tagloop.catalog.version("desk", "self")["parameters"]["self_training"] is True
    _, plain_model = tagloop.predictions.model("desk", "again")
    _, self_model = tagloop.predictions.model("desk", "self")
    assert pool_only not in plain_model.vocabulary  # type: ignore[attr-defined]
    assert "self_trained" not in plain_model.calibration  # type: ignore[attr-defined]
    assert pool_only in self_model.vocabulary  # type: ignore[attr-defined]
    assert self_model.calibration["self_trained"] == len(pooled)  # type: ignore[attr-defined]
    assert again["documents"] == on["documents"]  # the pool is not training data
