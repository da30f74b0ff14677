"""Champions, promotion and rollback (services/loops.py), endpoints that follow or stay
pinned; on the embedded database and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagloop.errors import ArtifactCorrupt, InvalidRequest, NotFound, ResourceInUse, ResourceUnavailable
from tagloop.services.training import TrainRequest


@pytest.fixture
def desk(make_tagloop, database_url, tickets_csv):
    """The tickets classifier trained twice (v1, v2)."""
    tagloop = make_tagloop(database_url=database_url)
    for _ in range(2):
        tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    return tagloop


def deployed(tagloop, summary: dict) -> dict:
    tagloop.queue.run_now(summary["job_id"])
    return tagloop.endpoints.show(summary["name"])


def test_promote_repoints_following_endpoints_only_and_rollback_undoes_it(desk):
    assert desk.loops.champion("desk") is None  # no endpoint serves a version yet
    follows = deployed(desk, desk.endpoints.create("follows", "desk"))
    pinned = deployed(desk, desk.endpoints.create("pinned", "desk", "v2"))
    assert (follows["version"], follows["follows"]) == ("v2", True)  # newest TRAINED became champion
    assert (pinned["version"], pinned["follows"]) == ("v2", False)
    assert desk.loops.champion("desk")["version"] == "v2"

    promoted = desk.loops.promote("desk", "v1")
    assert promoted == {
        "classifier": "desk",
        "champion": "v1",
        "previous": "v2",
        "reason": "manual",
        "endpoints": ["follows"],
        "changed": True,
    }
    assert desk.endpoints.show("follows")["version"] == "v1"
    assert desk.endpoints.show("follows")["status"] == "IN_SERVICE"
    assert desk.endpoints.show("pinned")["version"] == "v2"
    assert desk.endpoints.serving("follows", refresh=True).version == "v1"
    assert desk.loops.settings("desk")["following_endpoints"] == ["follows"]

    again = desk.loops.promote("desk", "v1")
    assert again["changed"] is False

    back = desk.loops.rollback("desk")
    assert (back["champion"], back["previous"], back["reason"]) == ("v2", "v1", "rollback")
    assert desk.endpoints.show("follows")["version"] == "v2"
    # every move of a following endpoint is told of as a deploy job tells of one (notifications);
    # the pinned endpoint and the promotion that changed nothing add none
    deploys = [e["payload"] for e in desk.loops.events(kind="endpoint.deployed")]
    assert [(d["endpoint"], d["version"], d["previous"]) for d in deploys] == [
        ("follows", "v2", None),
        ("pinned", "v2", None),
        ("follows", "v1", "v2"),
        ("follows", "v2", "v1"),
    ]
    assert deploys[-1]["status"] == "IN_SERVICE" and "F1Score" in deploys[-1]["metrics"]
    history = desk.loops.history("desk")
    assert [(h["from"], h["to"], h["reason"]) for h in history] == [
        ("v1", "v2", "rollback"),
        ("v2", "v1", "manual"),
        (None, "v2", "first following endpoint"),
    ]
    assert desk.loops.rollback("desk", to="v1")["champion"] == "v1"


def test_rollback_needs_an_earlier_champion(desk):
    with pytest.raises(InvalidRequest, match="no champion"):
        desk.loops.rollback("desk")
    desk.loops.promote("desk", "v1")
    with pytest.raises(InvalidRequest, match="before the current one"):
        desk.loops.rollback("desk")


def test_promote_refuses_unknown_untrained_and_unloadable_versions(desk, tickets_csv):
    with pytest.raises(NotFound):
        desk.loops.promote("desk", "v9")
    desk.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))  # v3, SUBMITTED
    with pytest.raises(ResourceUnavailable, match="only a TRAINED version"):
        desk.loops.promote("desk", "v3")
    Path(desk.catalog.version("desk", "v1")["artifact"]["path"]).write_bytes(b"not a model")
    with pytest.raises(ArtifactCorrupt):
        desk.loops.promote("desk", "v1")
    assert desk.loops.champion("desk") is None


def test_the_champion_cannot_be_deleted(desk):
    desk.loops.promote("desk", "v1")
    with pytest.raises(ResourceInUse, match="champion"):
        desk.training.delete_version("desk", "v1")
    desk.loops.promote("desk", "v2")
    desk.training.delete_version("desk", "v1")


def test_following_and_pinning_an_endpoint(desk):
    desk.loops.promote("desk", "v1")
    with pytest.raises(InvalidRequest, match="serves its champion"):
        desk.endpoints.create("help", "desk", "v2", follow=True)
    help_ = deployed(desk, desk.endpoints.create("help", "desk"))
    assert (help_["version"], help_["follows"]) == ("v1", True)
    with pytest.raises(InvalidRequest, match=r"endpoint .* serves its champion.*pin the endpoint"):
        desk.endpoints.update("help", "v2")
    pinned = desk.endpoints.update("help", follow=False)  # pinned where it is
    assert (pinned["version"], pinned["follows"], pinned["job_id"]) == ("v1", False, None)
    desk.queue.run_now(desk.endpoints.update("help", "v2")["job_id"])
    desk.loops.promote("desk", "v2")
    desk.loops.promote("desk", "v1")
    assert desk.endpoints.show("help")["version"] == "v2"  # pinned: stays
    desk.queue.run_now(desk.endpoints.update("help", follow=True)["job_id"])
    assert (desk.endpoints.show("help")["version"], desk.endpoints.show("help")["follows"]) == ("v1", True)


def test_loop_settings_are_checked_and_kept(desk):
    shown = desk.loops.settings("desk")
    assert shown["settings"]["metric"] == "F1Score" and shown["champion"] is None
    changed = desk.loops.configure("desk", {"min_gain": 0.01, "every_seconds": 3600, "promote": "manual"})
    assert changed["settings"]["min_gain"] == 0.01 and changed["next_run_at"] is not None
    bad_settings = (
        {"metric": "Nope"},
        {"min_gain": 2},
        {"every_seconds": 5},
        {"colour": "red"},
        {"promote": 1},
        {"refill_strategy": "psychic"},
    )
    for bad in bad_settings:
        with pytest.raises(InvalidRequest):
            desk.loops.configure("desk", bad)
    assert desk.loops.settings("desk")["settings"] == changed["settings"]
    cleared = desk.loops.configure("desk", {"every_seconds": None})
    assert cleared["next_run_at"] is None and cleared["settings"]["every_seconds"] is None
