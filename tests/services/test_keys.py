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


def test_made_up_keys_cannot_grow_the_cache(make_tagloop):
    """Anonymous callers choose the access key ids and Bearer secrets looked up: misses are
    cached (a retry costs no query) but the cache is bounded, and an id that is not of
    tagloop's shape is refused without a lookup (60 KB ids grew a server by 118 MB per 2,000
    requests)."""
    from tagloop.services import keys as keys_module

    tagloop = make_tagloop()
    created = tagloop.keys.create("real", "admin")
    assert tagloop.keys.by_access_key("x" * 60_000) == (None, None)
    assert tagloop.keys.by_access_key("TL" + "a" * 18) == (None, None)  # lower case: not ours
    assert tagloop.keys.cached_entries() == 0
    for number in range(keys_module.CACHE_ENTRIES + 500):
        assert tagloop.keys.by_access_key(f"TL{number:018d}") == (None, None)
        assert tagloop.keys.by_bearer(f"made-up-{number}") is None
    assert tagloop.keys.cached_entries() == keys_module.CACHE_ENTRIES
    principal, secret = tagloop.keys.by_access_key(created["access_key_id"])  # the real key still works
    assert principal is not None and principal.scope == "admin" and secret == created["secret"]
    assert tagloop.keys.by_bearer(created["secret"]) == principal


def test_the_cache_answers_for_access_keys_it_has_looked_up(make_tagloop):
    """The server checks a SigV4 access key id in its event loop from this cache, before a body."""
    tagloop = make_tagloop()
    key = tagloop.keys.create("app", "classify")
    assert tagloop.keys.cached_access_key(key["access_key_id"]) == (False, None)
    principal, _ = tagloop.keys.by_access_key(key["access_key_id"])
    assert principal is not None
    assert tagloop.keys.cached_access_key(key["access_key_id"]) == (True, principal)
    unknown = "TLNOSUCHKEY000000000"  # of tagloop's shape: looked up
    assert tagloop.keys.cached_access_key(unknown) == (False, None)
    tagloop.keys.by_access_key(unknown)
    assert tagloop.keys.cached_access_key(unknown) == (True, None)  # unknown, and known to be
    assert tagloop.keys.cached_access_key("AKIAOTHER") == (True, None)  # not of tagloop's shape: unknown
    tagloop.keys.revoke(key["access_key_id"])
    assert tagloop.keys.cached_access_key(key["access_key_id"]) == (False, None)  # the cache was cleared
