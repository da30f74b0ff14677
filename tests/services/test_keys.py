"""API keys: names follow the name rules of every other resource."""

from __future__ import annotations

import pytest

from tagloop.errors import InvalidRequest


@pytest.mark.parametrize(
    "name",
    ["nul\x00inside", "x" * 2_000_000, "two words", "", "-leading", "new\nline", "ünïcode"],
    ids=["nul", "2MB", "space", "empty", "hyphen", "newline", "non-ascii"],
)
def test_a_key_name_outside_the_name_rules_is_refused(make_tagloop, name):
    tagloop = make_tagloop()
    with pytest.raises(InvalidRequest) as raised:
        tagloop.keys.create(name, "classify")
    assert raised.value.message.startswith("invalid key name")
    assert len(raised.value.message) < 300  # a 2 MB name is not echoed back
    assert tagloop.keys.list() == []


def test_a_key_name_inside_the_rules_is_kept(make_tagloop):
    tagloop = make_tagloop()
    created = tagloop.keys.create("billing-app-2", "classify")
    assert created["name"] == "billing-app-2"
    assert [key["name"] for key in tagloop.keys.list()] == ["billing-app-2"]
