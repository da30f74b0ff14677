"""Archive rules: member paths that would escape the extraction folder, and the bomb limits."""

from __future__ import annotations

import pytest

from tagloop.domain.archives import RATIO_FLOOR_BYTES, ArchiveLimits, Budget, member_path
from tagloop.errors import ArchiveRefused


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../etc/passwd", "'..'"),
        ("a/../../b.csv", "'..'"),
        ("/etc/passwd", "absolute path"),
        ("C:/Windows/x.csv", "absolute path"),
        ("..\\..\\x.csv", "'..'"),
        ("a\x00b.csv", "control character"),
    ],
)
def test_escaping_member_paths_are_refused(name, reason):
    with pytest.raises(ArchiveRefused) as caught:
        member_path("in.zip", name)
    assert reason in caught.value.message and caught.value.message.startswith("in.zip: member")


def test_plain_member_paths_are_normalised():
    assert member_path("in.zip", "./a//b/c.csv") == "a/b/c.csv"
    assert member_path("in.zip", "dir\\x.csv") == "dir/x.csv"


def test_budget_limits():
    budget = Budget(
        "in.zip", ArchiveLimits(max_ratio=10, max_members=2, max_total_bytes=5 * RATIO_FLOOR_BYTES)
    )
    budget.count_members(2)
    with pytest.raises(ArchiveRefused, match=r"TAGLOOP_ARCHIVE_MAX_MEMBERS"):
        budget.count_members(1)
    budget.ratio("m", RATIO_FLOOR_BYTES, 1)  # under the floor: not judged
    with pytest.raises(ArchiveRefused, match=r"TAGLOOP_ARCHIVE_MAX_RATIO"):
        budget.ratio("m", RATIO_FLOOR_BYTES + 1, 1000)
    budget.grow("m", 5 * RATIO_FLOOR_BYTES)
    with pytest.raises(ArchiveRefused, match=r"TAGLOOP_ARCHIVE_MAX_TOTAL_BYTES"):
        budget.grow("m", 1)
