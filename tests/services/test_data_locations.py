"""The allowlist of data locations the network APIs may use (services/data_locations.py), and
confined batch jobs, which confirm every location again just before they use it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tagloop.errors import ConfigurationError, InvalidRequest, LocationNotAllowed
from tagloop.services.batch import BatchRequest, BatchShardJob
from tagloop.services.data_locations import DataLocations
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings


def refusal(url: str, field: str = "S3Uri") -> str:
    return f"{field} {url!r} is not in an allowed data location (setting TAGLOOP_ALLOWED_DATA_URLS)"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``in/`` (allowed) with a file, a sub-folder and links; ``inbox2/`` and ``out/`` beside it."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.csv").write_text("A,x\n")
    (tmp_path / "in" / "sub" / "b.csv").write_text("B,y\n")
    (tmp_path / "inbox2").mkdir()
    (tmp_path / "inbox2" / "c.csv").write_text("C,z\n")
    (tmp_path / "secret.csv").write_text("S,secret\n")
    (tmp_path / "in" / "out-link").symlink_to(tmp_path / "inbox2")
    (tmp_path / "in" / "secret.csv").symlink_to(tmp_path / "secret.csv")
    (tmp_path / "in" / "same.csv").symlink_to(tmp_path / "in" / "a.csv")
    return tmp_path


def test_allowed_locations_come_back_normalised(tree):
    locations = DataLocations([f"{tree}/in"])
    inside = tree / "in"
    assert locations.check(f"{inside}/a.csv", "S3Uri") == f"{inside}/a.csv"
    assert locations.check(f"file://{inside}/a.csv", "S3Uri") == f"file://{inside}/a.csv"
    assert locations.check(f"{inside}//sub/b.csv", "S3Uri") == f"{inside}/sub/b.csv"
    assert locations.check(f"{inside}/", "S3Uri") == str(inside)
    assert locations.check(f"{inside}/not-yet/out", "S3Uri") == f"{inside}/not-yet/out"
    # a link inside the allowed folder to a file inside it: the real path is what gets opened
    assert locations.check(f"{inside}/same.csv", "S3Uri") == f"{inside}/a.csv"
    assert locations.confirm(f"{inside}/a.csv", "S3Uri") == f"{inside}/a.csv"


def test_refusals_have_one_message_whatever_the_target(tree):
    locations = DataLocations([f"file://{tree}/in/"])
    refused = [
        "/etc/passwd",
        "/etc/no-such-file",
        "/etc",
        f"{tree}/secret.csv",
        f"{tree}/no-such-file.csv",
        f"{tree}/in/../secret.csv",
        f"{tree}/in/../no-such-file.csv",
        f"{tree}/in/secret.csv",  # a link out of the allowed folder
        f"{tree}/in/out-link/c.csv",
        f"{tree}/in/out-link/missing.csv",
        f"{tree}/inbox2/c.csv",  # a sibling sharing the allowed folder's name as a prefix
        f"{tree}/inbox2",
        f"{tree}/i",
        "http://127.0.0.1/a.csv",
        "ftp://127.0.0.1/a.csv",
        "data:,A,x",
        f"zip://a.csv::file://{tree}/in/a.zip",
        f"simplecache::file://{tree}/in/a.csv",
        "memory://in/a.csv",
    ]
    for url in refused:
        with pytest.raises(LocationNotAllowed) as caught:
            locations.check(url, "S3Uri")
        assert caught.value.message == refusal(url)
        assert isinstance(caught.value, InvalidRequest)  # answered as a client error at every door
    with pytest.raises(InvalidRequest, match="S3Uri must be a string"):
        locations.check(["/etc/passwd"], "S3Uri")


def test_confirm_refuses_a_location_that_is_no_longer_its_real_path(tree):
    locations = DataLocations([str(tree / "in")])
    checked = locations.check(f"{tree}/in/sub/b.csv", "S3Uri")
    (tree / "in" / "sub").rename(tree / "in" / "sub-old")
    (tree / "in" / "sub").symlink_to(tree / "in" / "sub-old")  # still inside, but a link now
    with pytest.raises(LocationNotAllowed):
        locations.confirm(checked, "batch input")
    assert not locations.allows_as_is(checked)


def test_by_default_only_the_artifact_store_is_allowed(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    locations = DataLocations.from_settings(settings)
    store = settings.resolved_artifacts_url
    assert locations.roots == [f"file://{store}"]
    assert locations.check(f"{store}/inbox/a.csv", "S3Uri") == f"{store}/inbox/a.csv"
    for url in (str(tmp_path / "data" / "tagloop.db"), f"{store}2/a.csv", "s3://bucket/a.csv"):
        with pytest.raises(LocationNotAllowed):
            locations.check(url, "S3Uri")


def test_the_setting_is_a_comma_separated_list(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "TAGLOOP_ALLOWED_DATA_URLS", f" s3://bucket/inbox/ , file://{tmp_path}/in/,,{tmp_path}/more "
    )
    settings = Settings(data_dir=tmp_path / "data", artifacts_url="s3://models/tagloop")
    assert settings.allowed_data_urls == ("s3://bucket/inbox/", f"file://{tmp_path}/in/", f"{tmp_path}/more")
    locations = DataLocations.from_settings(settings)
    assert locations.roots == [
        "s3://models/tagloop",
        "s3://bucket/inbox/",
        f"file://{tmp_path}/in",
        f"file://{tmp_path}/more",
    ]
    assert locations.check("s3://bucket/inbox/a.csv", "S3Uri") == "s3://bucket/inbox/a.csv"
    assert locations.check("S3://bucket/inbox/a.csv", "S3Uri") == "s3://bucket/inbox/a.csv"
    assert locations.check(f"{tmp_path}/more/x.csv", "S3Uri") == f"{tmp_path}/more/x.csv"
    for url in ("s3://bucket/inbox2/a.csv", "s3a://bucket/inbox/a.csv", "s3://bucket/inbox/../a.csv"):
        with pytest.raises(LocationNotAllowed):
            locations.check(url, "S3Uri")


def test_an_allowed_root_reached_through_a_link_is_compared_by_its_real_path(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.csv").write_text("A,x\n")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    locations = DataLocations([str(tmp_path / "alias")])
    assert locations.check(f"{tmp_path}/alias/a.csv", "S3Uri") == f"{tmp_path}/real/a.csv"
    assert locations.check(f"{tmp_path}/real/a.csv", "S3Uri") == f"{tmp_path}/real/a.csv"


@pytest.mark.parametrize(
    "entry",
    ["simplecache::s3://bucket/", "s3://bucket/../x", "https://user:pw@host/", "s3:///x", "file://host/x"],
)
def test_an_entry_that_cannot_be_compared_is_a_configuration_error(entry, tmp_path):
    with pytest.raises(ConfigurationError, match="TAGLOOP_ALLOWED_DATA_URLS"):
        DataLocations([entry])


def test_the_cli_side_of_the_services_reads_any_path(make_tagloop, tickets, write_csv):
    """The check belongs to the network doors: services called directly (the CLI) read any path."""
    tagloop = make_tagloop()
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    with pytest.raises(LocationNotAllowed):
        tagloop.data_locations.check(str(data), "S3Uri")
    assert tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))["status"] == "TRAINED"


# ---- confined batch jobs: what was checked at submission is confirmed again on use ----------------


@pytest.fixture
def confined(make_tagloop, tickets, write_csv, tmp_path):
    """A Tagloop allowing ``inbox/``, with the tickets classifier trained."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    tagloop = make_tagloop(allowed_data_urls=(str(inbox),))
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("the secret line\n", encoding="utf-8")
    return tagloop, inbox, tmp_path / "outside"


def confined_request(tagloop, input_url: str, output_url: str, **options) -> BatchRequest:
    locations = tagloop.data_locations
    return BatchRequest(
        "desk",
        locations.check(input_url, "InputDataConfig.S3Uri"),
        locations.check(output_url, "OutputDataConfig.S3Uri"),
        confined=True,
        **options,
    )


def test_a_confined_batch_runs_inside_the_allowlist(confined):
    tagloop, inbox, _ = confined
    (inbox / "docs").mkdir()
    (inbox / "docs" / "a.txt").write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    job_id = tagloop.batch.submit(confined_request(tagloop, str(inbox / "docs"), str(inbox / "out")))
    assert tagloop.jobs.show(job_id)["payload"]["confined"] is True
    tagloop.start_workers()
    assert tagloop.queue.wait(job_id, timeout=120) == "COMPLETED", tagloop.jobs.show(job_id)["error"]
    assert (inbox / "out" / job_id / "manifest.json").exists()


def test_an_input_swapped_for_a_link_after_submission_is_not_read(confined):
    tagloop, inbox, outside = confined
    source = inbox / "in.txt"
    source.write_text("printer jammed\n", encoding="utf-8")
    job_id = tagloop.batch.submit(confined_request(tagloop, str(source), str(inbox / "out")))
    source.unlink()
    source.symlink_to(outside / "secret.txt")  # swapped between the check and the job
    tagloop.start_workers()
    assert tagloop.queue.wait(job_id, timeout=120) == "FAILED"
    job = tagloop.jobs.show(job_id)
    assert job["error"] == refusal(f"file://{source}", "batch input")
    assert not (inbox / "out" / job_id).exists()


def test_an_input_folder_gaining_a_link_out_fails_the_job(confined):
    """The planner confirms each file it lists."""
    tagloop, inbox, outside = confined
    (inbox / "docs").mkdir()
    (inbox / "docs" / "a.txt").write_text("printer jammed\n" * 5, encoding="utf-8")
    (inbox / "docs" / "b.txt").write_text("refund my invoice\n" * 5, encoding="utf-8")
    job_id = tagloop.batch.submit(
        confined_request(tagloop, str(inbox / "docs"), str(inbox / "out"), shard_documents=1_000)
    )
    (inbox / "docs" / "c.txt").symlink_to(outside / "secret.txt")
    tagloop.start_workers()
    assert tagloop.queue.wait(job_id, timeout=120) == "FAILED"
    assert refusal(f"file://{inbox}/docs/c.txt", "batch input") in tagloop.jobs.show(job_id)["error"]


def test_an_output_folder_swapped_for_a_link_is_not_written(confined):
    tagloop, inbox, outside = confined
    source = inbox / "in.txt"
    source.write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    (inbox / "out").mkdir()
    job_id = tagloop.batch.submit(confined_request(tagloop, str(source), str(inbox / "out")))
    os.rename(inbox / "out", inbox / "out-old")
    (inbox / "out").symlink_to(outside)  # the output folder now leads outside
    tagloop.start_workers()
    assert tagloop.queue.wait(job_id, timeout=120) == "FAILED"
    assert "batch output" in tagloop.jobs.show(job_id)["error"]
    assert sorted(path.name for path in outside.iterdir()) == ["secret.txt"]  # nothing written there


def test_a_shard_confirms_its_files_before_reading_them(confined):
    """A file replaced by a link between planning and the shard's run is not read."""
    tagloop, inbox, outside = confined
    (inbox / "a.txt").symlink_to(outside / "secret.txt")
    shard = BatchShardJob(tagloop.database, tagloop.models, tagloop.predictions, tagloop.data_locations)
    payload = {
        "input_format": "ONE_DOC_PER_LINE",
        "output_dir": f"{inbox}/out/job",
        "path": f"file://{inbox}/a.txt",
        "name": "a.txt",
        "start": 0,
        "end": None,
        "first_line": 0,
        "shard": 0,
        "confined": True,
    }
    with pytest.raises(LocationNotAllowed, match="batch input"):
        shard._documents(payload)
    assert not (inbox / "out").exists()
