"""Endpoint deployments: CREATING → IN_SERVICE, UPDATING that switches only to a model that
loads, FAILED with a reason; on the embedded database and on PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tagloop.errors import ArtifactCorrupt, NotFound, ResourceInUse, ResourceUnavailable
from tagloop.services.training import TrainRequest


@pytest.fixture
def desk(make_tagloop, database_url, tickets_csv):
    """The tickets classifier trained twice (v1, v2); the local queue has no worker running."""
    tagloop = make_tagloop(database_url=database_url)
    for _ in range(2):
        tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    return tagloop


def corrupt(tagloop, version: str) -> None:
    """Damage the stored model file of ``version`` (local artifact store)."""
    Path(tagloop.catalog.version("desk", version)["artifact"]["path"]).write_bytes(b"not a model")


def test_an_endpoint_serves_once_its_model_is_loaded(desk):
    created = desk.endpoints.create("help", "desk", "v1", inference_units=2)
    assert (created["status"], created["version"], created["desired_version"]) == ("CREATING", "v1", "v1")
    with pytest.raises(ResourceUnavailable, match="CREATING"):
        desk.endpoints.serving("help")
    assert desk.jobs.show(created["job_id"])["kind"] == "deploy"
    desk.queue.run_now(created["job_id"])
    shown = desk.endpoints.show("help")
    assert (shown["status"], shown["version"], shown["message"]) == ("IN_SERVICE", "v1", None)
    assert desk.endpoints.serving("help").version == "v1"


def test_an_update_switches_only_after_the_new_model_loaded(desk):
    desk.queue.run_now(desk.endpoints.create("help", "desk", "v1")["job_id"])
    updating = desk.endpoints.update("help", "v2")
    assert (updating["status"], updating["version"], updating["desired_version"]) == ("UPDATING", "v1", "v2")
    assert desk.endpoints.serving("help", refresh=True).version == "v1"  # serves on while updating
    with pytest.raises(ResourceInUse, match="UPDATING"):
        desk.endpoints.update("help", "v1")  # one deployment at a time
    desk.queue.run_now(updating["job_id"])
    assert desk.endpoints.show("help")["status"] == "IN_SERVICE"
    assert desk.endpoints.serving("help", refresh=True).version == "v2"
    units_only = desk.endpoints.update("help", "v2", inference_units=3)
    assert (units_only["status"], units_only["job_id"]) == ("IN_SERVICE", None)
    assert units_only["desired_inference_units"] == 3


def test_a_model_that_cannot_load_never_serves(desk):
    desk.queue.run_now(desk.endpoints.create("help", "desk", "v1")["job_id"])
    corrupt(desk, "v2")
    updating = desk.endpoints.update("help", "v2")
    with pytest.raises(ArtifactCorrupt):
        desk.queue.run_now(updating["job_id"])
    shown = desk.endpoints.show("help")
    assert (shown["status"], shown["version"], shown["desired_version"]) == ("IN_SERVICE", "v1", "v1")
    assert shown["message"].startswith("updating to version v2 failed: ")
    assert desk.endpoints.serving("help", refresh=True).version == "v1"
    assert desk.jobs.show(updating["job_id"])["status"] == "FAILED"


def test_a_new_endpoint_whose_model_cannot_load_is_failed_until_fixed(desk):
    corrupt(desk, "v1")
    created = desk.endpoints.create("help", "desk", "v1")
    with pytest.raises(ArtifactCorrupt):
        desk.queue.run_now(created["job_id"])
    shown = desk.endpoints.show("help")
    assert shown["status"] == "FAILED" and shown["message"].startswith("deploying version v1 failed: ")
    with pytest.raises(ResourceUnavailable, match="FAILED: deploying version v1 failed"):
        desk.endpoints.serving("help")
    again = desk.endpoints.update("help", "v2")
    assert again["status"] == "CREATING"
    desk.queue.run_now(again["job_id"])
    assert desk.endpoints.serving("help").version == "v2"


def test_versions_being_deployed_cannot_be_deleted_and_deleted_endpoints_are_not_deployed(desk):
    created = desk.endpoints.create("help", "desk", "v1")
    with pytest.raises(ResourceInUse, match="help"):
        desk.training.delete_version("desk", "v1")
    desk.endpoints.delete("help")
    desk.queue.run_now(created["job_id"])
    assert desk.jobs.show(created["job_id"])["result"]["status"] == "SUPERSEDED"
    desk.training.delete_version("desk", "v1")


class PausedReads:
    """The endpoint service's database, except that one thread's read pauses after it read
    (before the service acts on it): lets a test order a slow, older read after a newer one."""

    def __init__(self, database) -> None:
        self.database = database
        self.paused: threading.Thread | None = None
        self.read = threading.Event()
        self.resume = threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.database, name)

    @contextmanager
    def reading(self) -> Iterator[object]:
        with self.database.reading() as session:
            yield session
        if threading.current_thread() is self.paused:
            self.read.set()
            assert self.resume.wait(60), "never resumed"


def test_a_process_that_serves_the_new_version_never_goes_back_to_the_old(desk):
    """An older read of where the endpoint points (begun before the switch, finished after a
    newer read) must not replace the newer answer in the process's cache."""
    desk.queue.run_now(desk.endpoints.create("help", "desk", "v1")["job_id"])
    assert desk.endpoints.serving("help").version == "v1"
    database = desk.endpoints.database = PausedReads(desk.endpoints.database)
    answers = []
    database.paused = threading.Thread(
        target=lambda: answers.append(desk.endpoints.serving("help", refresh=True))
    )
    database.paused.start()
    assert database.read.wait(60)  # it read "v1" and is about to cache it
    desk.queue.run_now(desk.endpoints.update("help", "v2")["job_id"])
    assert desk.endpoints.serving("help", refresh=True).version == "v2"
    database.resume.set()
    database.paused.join()
    assert answers[0].version in ("v1", "v2")  # began before the switch: either is right for it
    assert desk.endpoints.serving("help").version == "v2"
    desk.endpoints.delete("help")
    with pytest.raises(NotFound):
        desk.endpoints.serving("help")


def flip_a_byte(path: Path) -> bytes:
    """Flip one byte in the middle of ``path``; returns the original content."""
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    return original


def test_a_model_file_damaged_while_serving_fails_the_endpoint_after_a_restart(
    desk, make_tagloop, database_url, caplog
):
    """Finding 8: after a restart, classify answered a 500 naming the file while the endpoint
    still said IN_SERVICE. Now the endpoint is FAILED for every process, with a message that
    names no path (the log has it), until it is deployed again."""
    desk.queue.run_now(desk.endpoints.create("help", "desk", "v1")["job_id"])
    assert desk.endpoints.serving("help").version == "v1"
    path = Path(desk.catalog.version("desk", "v1")["artifact"]["path"])
    original = flip_a_byte(path)
    restarted = make_tagloop(database_url=database_url)  # a new process: nothing loaded
    with pytest.raises(ResourceUnavailable) as caught:
        restarted.endpoints.serving("help")
    message = "its model version v1 failed to load (file damaged); see the server log"
    assert caught.value.message == f"endpoint 'help' is FAILED: {message}"
    assert str(path.parent) not in caught.value.message and str(path) in caplog.text
    shown = desk.endpoints.show("help")  # the other process sees it too
    assert (shown["status"], shown["message"]) == ("FAILED", message)
    with pytest.raises(ResourceUnavailable, match="FAILED"):
        restarted.endpoints.serving("help", refresh=True)
    assert restarted.endpoints.load_failures() == {"help": 1}  # FAILED: no second attempt
    assert restarted.endpoints.failed() == {"help": message}

    path.write_bytes(original)  # the file restored, the endpoint is deployed again
    again = restarted.endpoints.update("help", "v1")
    assert again["status"] == "CREATING"
    restarted.queue.run_now(again["job_id"])
    assert restarted.endpoints.serving("help").version == "v1"
    assert restarted.endpoints.show("help")["status"] == "IN_SERVICE"
    assert restarted.endpoints.failed() == {}


def test_a_missing_model_file_fails_the_endpoint_until_it_is_re_pointed(desk, make_tagloop, database_url):
    desk.queue.run_now(desk.endpoints.create("help", "desk", "v1")["job_id"])
    path = Path(desk.catalog.version("desk", "v1")["artifact"]["path"])
    path.unlink()
    restarted = make_tagloop(database_url=database_url, endpoint_refresh_seconds=0.05)
    with pytest.raises(ResourceUnavailable, match=r"failed to load \(file missing\)") as caught:
        restarted.endpoints.serving("help")
    assert str(path.parent) not in caught.value.message
    assert desk.endpoints.show("help")["status"] == "FAILED"
    restarted.endpoints.follow()
    try:
        assert restarted.endpoints.failed() == {"help": desk.endpoints.show("help")["message"]}
        desk.queue.run_now(desk.endpoints.update("help", "v2")["job_id"])  # re-pointed elsewhere
        deadline = time.monotonic() + 30
        while restarted.endpoints.failed():  # the follower looks again: no longer FAILED
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert restarted.endpoints.serving("help").version == "v2"
    finally:
        restarted.endpoints.stop_following()


def test_deployment_errors_name_no_paths(desk, tmp_path):
    corrupt(desk, "v1")
    created = desk.endpoints.create("help", "desk", "v1")
    with pytest.raises(ArtifactCorrupt) as caught:
        desk.queue.run_now(created["job_id"])
    assert str(tmp_path) not in caught.value.message and caught.value.location
    assert str(tmp_path) not in desk.endpoints.show("help")["message"]
    assert str(tmp_path) not in json.dumps(desk.jobs.show(created["job_id"]))
