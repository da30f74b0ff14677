"""Parsing data locations into comparable parts (domain/locations.py)."""

from __future__ import annotations

import pytest

from tagloop.domain.locations import Location, parse_location


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("/srv/inbox/a.csv", Location("file", "", "/srv/inbox/a.csv")),
        ("file:///srv/inbox/a.csv", Location("file", "", "/srv/inbox/a.csv")),
        ("FILE:///srv/inbox/", Location("file", "", "/srv/inbox")),
        ("/srv//inbox/a.csv", Location("file", "", "/srv/inbox/a.csv")),
        ("/", Location("file", "", "/")),
        ("s3://bucket/prefix/a.csv", Location("s3", "bucket", "prefix/a.csv")),
        ("s3://bucket/prefix/", Location("s3", "bucket", "prefix/")),
        ("s3://bucket", Location("s3", "bucket", "")),
        ("S3://bucket/my file.csv", Location("s3", "bucket", "my file.csv")),
        (
            "https://data.example.com:8443/sets/a.csv",
            Location("https", "data.example.com:8443", "sets/a.csv"),
        ),
    ],
)
def test_locations_parse_into_protocol_host_and_path(url, parsed):
    assert parse_location(url) == parsed


@pytest.mark.parametrize(
    "url",
    [
        "",
        "relative/path.csv",
        "~/.ssh/id_rsa",
        "./a.csv",
        "/srv/inbox/../etc/passwd",
        "/srv/inbox/./a.csv",
        "/srv/inbox/..",
        "file://localhost/etc/passwd",
        "file://etc/passwd",
        "/srv/inbox/a.csv\x00.txt",
        "/srv/inbox/a\n.csv",
        "/srv/inbox/x://y",
        "simplecache::file:///srv/inbox/a.csv",
        "zip://a.csv::file:///srv/inbox/a.zip",
        "file:///srv/inbox/a.csv::",
        "data:text/plain;base64,QUJD",
        "s3://bucket/prefix/../other/a.csv",
        "s3://bucket/prefix/%2e%2e/other/a.csv",
        "s3://bucket/prefix/%2E%2E/other/a.csv",
        "s3://bucket/prefix//a.csv",
        "s3://bucket//prefix/a.csv",
        "s3://bucket/prefix/./a.csv",
        "s3://bucket/a.csv?versionId=1",
        "https://host/a.csv#x",
        "https://user:pass@host/a.csv",
        "https://trusted.example.com@evil.example.com/a.csv",
        "s3://",
        "s3:///key",
        "3s://bucket/key",
        "s3://bucket/a\\..\\b",
        "s3://bucket/a/s3://other/b",
        42,
        None,
    ],
)
def test_locations_that_cannot_be_compared_safely_parse_to_none(url):
    assert parse_location(url) is None


@pytest.mark.parametrize(
    ("url", "root", "inside"),
    [
        ("/srv/in/a.csv", "/srv/in", True),
        ("/srv/in/a.csv", "/srv/in/", True),
        ("/srv/in", "/srv/in/", True),
        ("/srv/in/deep/er/a.csv", "file:///srv/in", True),
        ("/srv/inbox2/a.csv", "/srv/in", False),  # a sibling sharing the prefix is not inside
        ("/srv/inbox2", "/srv/in", False),
        ("/srv", "/srv/in", False),
        ("/etc/passwd", "/", True),
        ("s3://bucket/inbox/a.csv", "s3://bucket/inbox/", True),
        ("s3://bucket/inbox/a.csv", "s3://bucket/inbox", True),
        ("s3://bucket/inbox2/a.csv", "s3://bucket/inbox", False),
        ("s3://bucket/a.csv", "s3://bucket/inbox/", False),
        ("s3://bucket/any/key.csv", "s3://bucket", True),
        ("s3://bucket2/inbox/a.csv", "s3://bucket/inbox/", False),
        ("s3://bucket/inbox/a.csv", "gcs://bucket/inbox/", False),
        ("file:///bucket/inbox/a.csv", "s3://bucket/inbox/", False),
        ("https://host/sets/a.csv", "https://host:8443/sets/", False),
    ],
)
def test_within_compares_protocol_host_and_a_folder_boundary(url, root, inside):
    location, base = parse_location(url), parse_location(root)
    assert location is not None and base is not None
    assert location.within(base) is inside
