"""Training lifecycle through the services: failures and stops never touch what serves."""

from __future__ import annotations

import pytest

from tagloop.errors import DatasetInvalid, ResourceInUse, Stopped
from tagloop.services.training import TrainRequest


@pytest.fixture
def tickets_csv(tickets, write_csv):
    return write_csv([list(row) for row in tickets], "tickets.csv")


def test_lifecycle_submitted_training_trained(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert tagloop.training.summary(submission.version_id)["status"] == "SUBMITTED"
    assert tagloop.jobs.show(submission.job_id)["status"] == "SUBMITTED"
    seen = []
    tagloop.queue.run_now(submission.job_id, lambda fraction, message: seen.append(fraction))
    assert tagloop.training.summary(submission.version_id)["status"] == "TRAINED"
    assert tagloop.jobs.show(submission.job_id)["status"] == "COMPLETED"
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_a_crash_while_saving_leaves_the_trained_version_serving(make_tagloop, tickets_csv, tmp_path):
    tagloop = make_tagloop()
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    (tmp_path / "blocker").write_text("a file where the artifact folder should be")
    broken = make_tagloop(artifacts_url=str(tmp_path / "blocker" / "artifacts"))
    with pytest.raises(OSError):
        broken.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    versions = {v["version"]: v for v in tagloop.catalog.versions("desk")}
    assert versions["v1"]["status"] == "TRAINED"
    assert versions["v2"]["status"] == "IN_ERROR"
    assert "internal error" in versions["v2"]["message"]
    name, model = tagloop.predictions.model("desk")
    assert name == "v1"
    assert next(tagloop.predictions.classify(model, ["printer jammed"]))["Classes"][0]["Name"] == "HARDWARE"


def test_stop_requested_before_training_stops_it(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    submission = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert tagloop.jobs.stop(submission.job_id)["status"] == "STOPPED"
    assert tagloop.training.summary(submission.version_id)["status"] == "STOPPED"
    with pytest.raises(ResourceInUse):
        tagloop.training.run(submission.version_id)  # a stopped version is never trained after all
    other = tagloop.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with pytest.raises(Stopped):
        tagloop.training.run(other.version_id, should_stop=lambda: True)
    assert tagloop.training.summary(other.version_id)["status"] == "STOPPED"


def test_rare_labels_warn_and_stay_in_training(make_tagloop, tickets, write_csv):
    rows = [list(row) for row in tickets] + [["PRINTING", "the plotter prints stripes"]] * 2
    tagloop = make_tagloop()
    result = tagloop.training.train(TrainRequest(classifier="desk", data=str(write_csv(rows))))
    assert "PRINTING" in result["labels"]
    warnings = " ".join(result["warnings"])
    assert "PRINTING (2)" in warnings
    assert "kept in training only: PRINTING" in warnings


def test_gzip_jsonl_and_mapped_csv_inputs(make_tagloop, tickets, tmp_path):
    import csv
    import gzip
    import json

    with gzip.open(tmp_path / "t.csv.gz", "wt", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    (tmp_path / "t.jsonl").write_text(
        "\n".join(json.dumps({"text": text, "labels": [label]}) for label, text in tickets), encoding="utf-8"
    )
    with (tmp_path / "mapped.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["summary", "description", "project"])
        for label, text in tickets:
            writer.writerow([text[:20], text[20:], label])
    tagloop = make_tagloop()
    for name, request in {
        "gz": TrainRequest(classifier="gz", data=str(tmp_path / "t.csv.gz")),
        "jl": TrainRequest(classifier="jl", data=str(tmp_path / "t.jsonl")),
        "mapped": TrainRequest(
            classifier="mapped",
            data=str(tmp_path / "mapped.csv"),
            text_columns=("summary", "description"),
            label_column="project",
        ),
    }.items():
        result = tagloop.training.train(request)
        assert result["status"] == "TRAINED", name
        assert result["documents"]["train"] + result["documents"]["test"] == len(tickets)


def test_test_labels_unseen_in_training_warn(make_tagloop, tickets, write_csv):
    tagloop = make_tagloop()
    test = write_csv([["NETWORK", "vpn down"], ["FACILITIES", "the lift is broken"]], "test.csv")
    result = tagloop.training.train(
        TrainRequest(classifier="desk", data=str(write_csv([list(r) for r in tickets])), test=str(test))
    )
    assert any("FACILITIES" in w for w in result["warnings"])


def test_single_label_multi_class_is_refused(make_tagloop, write_csv):
    tagloop = make_tagloop()
    with pytest.raises(DatasetInvalid, match="at least 2 labels"):
        tagloop.training.train(TrainRequest(classifier="one", data=str(write_csv([["A", "x"], ["A", "y"]]))))
