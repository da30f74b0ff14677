"""The inbox's pure rules: settings, which names are picked up, when, and where files go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tagloop.domain.inbox import InboxSettings, claimable, destination, is_candidate
from tagloop.errors import InvalidRequest

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_settings_are_checked_and_round_trip():
    settings = InboxSettings(train="append", deploy="better", endpoint="desk-live")
    assert InboxSettings.from_dict(settings.to_dict()) == settings
    assert InboxSettings.from_dict({}) == InboxSettings("replace", "auto", None)
    with pytest.raises(InvalidRequest, match="train: 'merge' is not one of replace, append"):
        InboxSettings(train="merge")
    with pytest.raises(InvalidRequest, match="deploy: 'always' is not one of auto, better, never"):
        InboxSettings(deploy="always")
    with pytest.raises(InvalidRequest, match="invalid endpoint name"):
        InboxSettings(endpoint="../x")


@pytest.mark.parametrize(
    ("name", "picked"),
    [
        ("tickets.csv", True),
        ("data.jsonl.gz", True),
        ("archive.zip", True),
        (".tickets.csv.x7Yz", False),  # rsync's temporary name
        ("tickets.csv.part", False),
        ("tickets.csv.tmp", False),
        ("tickets.csv.crdownload", False),
        ("tickets.csv~", False),
        ("~$tickets.xlsx", False),
        ("tickets.csv.ready", False),  # the marker
        ("tickets.csv.error.json", False),  # tagloop's report
        ("", False),
        ("a/b.csv", False),
    ],
)
def test_which_names_are_files_to_process(name, picked):
    assert is_candidate(name) is picked


def test_a_file_is_claimed_after_two_unchanged_looks_or_with_its_marker():
    scan = T0 + timedelta(seconds=30)
    # first seen in this very scan: never, however long the setting (a half-written upload)
    assert not claimable(False, scan, scan, scan, 0)
    # seen unchanged since an earlier scan, long enough
    assert claimable(False, T0, scan, scan, 30)
    assert not claimable(False, T0, scan, scan, 31)
    # its .ready marker: at once
    assert claimable(True, scan, scan, scan, 3600)
    assert not claimable(False, None, scan, scan, 0)


def test_destinations_never_overwrite():
    assert destination("processed", "tickets.csv", False, 7) == "processed/tickets.csv"
    assert destination("processed", "tickets.csv", True, 7) == "processed/tickets.7.csv"
    assert destination("failed", "data.jsonl.gz", True, 9) == "failed/data.9.jsonl.gz"
    assert destination("failed", "README", True, 9) == "failed/README.9"
