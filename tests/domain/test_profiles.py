"""The import profile spec: what it accepts, what it refuses (naming the field), how a record
becomes a row, labels from member names, and the static check of a query."""

from __future__ import annotations

import pytest

from tagloop.domain.formats import RawRow
from tagloop.domain.profiles import Filter, ProfileSpec, check_read_query, strip_extensions
from tagloop.errors import InvalidRequest, RowIssue

RECIPE = {
    "query": "SELECT type, summary, description FROM issue",
    "text_columns": ["summary", "description"],
    "filters": ["type=Bug"],
    "label_from": "member",
}


def test_round_trip_through_json():
    spec = ProfileSpec.from_dict(RECIPE | {"label_map": {"hadoop": "HDP"}, "members": ["*.sqlite3.bz2"]})
    assert ProfileSpec.from_dict(spec.as_dict()) == spec
    assert spec.filters == (Filter("type", ("Bug",)),)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"colour": "red"}, "unknown profile field colour"),
        ({"format": "xlsx"}, "format: 'xlsx' is not one of"),
        ({"text_columns": "a" * 300}, "text_columns: must be 1 to 256"),
        ({"text_columns": [1]}, "text_columns: must be a string"),
        ({"label_from": "sky"}, "label_from"),
        ({"format": "sqlite"}, "format sqlite needs a query"),
        ({"database_url": "postgresql://h/db"}, "database_url needs a query"),
        ({"format": "lines"}, "format lines has no label column"),
        ({"format": "comprehend-csv", "text_columns": ["a"]}, "comprehend-csv has no named columns"),
        ({"label_column": "project", "label_from": "member"}, "either label_column or label_from"),
        ({"filters": ["nonsense"]}, "write COLUMN=VALUE"),
        ({"filters": [{"column": "a", "values": []}]}, "filters.values"),
        ({"query": "DELETE FROM issue"}, "start it with SELECT or WITH (it starts with DELETE)"),
        ([1, 2], "a profile is a JSON object"),
    ],
)
def test_refusals_name_the_field(data, reason):
    with pytest.raises(InvalidRequest) as caught:
        ProfileSpec.from_dict(data)
    assert reason in caught.value.message


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1; DROP TABLE issue",
        "WITH gone AS (DELETE FROM issue RETURNING *) SELECT * FROM gone",
        "select * from issue -- fine\n; insert into issue values (1)",
        "SELECT * INTO copy FROM issue",
        "ATTACH DATABASE '/tmp/x' AS x",
        "PRAGMA writable_schema = 1",
        "",
    ],
)
def test_writing_queries_are_refused(query):
    with pytest.raises(InvalidRequest):
        check_read_query(query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT summary, description FROM issue WHERE type = 'Bug';",
        "select 'drop table x; delete' as text, \"update\" from t",  # words inside strings and names
        "WITH b AS (SELECT * FROM issue) SELECT summary || ' ' || description AS text FROM b",
        "/* a comment with DELETE */ SELECT replace(summary, 'a', 'b') AS text FROM issue",
    ],
)
def test_reading_queries_pass(query):
    check_read_query(query)


def test_mapper_joins_filters_and_converts():
    spec = ProfileSpec.from_dict(RECIPE | {"label_from": "column", "label_column": "project"})
    row = spec.mapper(["type", "summary", "description", "project"], member="x.db")
    assert row(1, ["Bug", "Crash", "on start", "SPARK"]) == RawRow(1, "Crash on start", "SPARK")
    assert row(2, ["Task", "Crash", "on start", "SPARK"]) is None  # filtered out
    assert row(3, ["Bug", "Crash", None, 7]) == RawRow(3, "Crash", "7")  # NULL skipped, number as text
    issue = row(4, ["Bug", b"\xff\xfe", "x", "SPARK"])
    assert isinstance(issue, RowIssue) and issue.member == "x.db" and "UTF-8" in issue.reason
    assert "x.db, line 4" in str(issue)


def test_exclude_filter_and_several_values():
    spec = ProfileSpec.from_dict({"text_columns": ["t"], "label_column": "l", "filters": ["kind!=spam|junk"]})
    row = spec.mapper(["t", "l", "kind"])
    assert row(1, ["a", "X", "spam"]) is None and row(2, ["a", "X", "junk"]) is None
    assert row(3, ["a", "X", "ham"]) == RawRow(3, "a", "X")


def test_a_missing_column_names_the_columns_there_are():
    spec = ProfileSpec.from_dict({"text_columns": ["summary"], "label_column": "project"})
    with pytest.raises(InvalidRequest, match=r"m\.csv: column project not found \(columns: summary, type\)"):
        spec.mapper(["summary", "type"], member="m.csv")


@pytest.mark.parametrize(
    ("spec", "member", "label"),
    [
        ({"label_from": "member"}, "hadoop.sqlite3.bz2", "HADOOP"),
        ({"label_from": "member"}, "dumps/spark.db", "SPARK"),
        ({"label_from": "member", "label_case": "keep"}, "Kafka.csv", "Kafka"),
        ({"label_from": "member", "label_case": "lower"}, "KAFKA.csv", "kafka"),
        ({"label_from": "member", "label_map": {"hadoop": "Big Data"}}, "hadoop.sqlite3.bz2", "Big Data"),
        ({"label_from": "folder"}, "sci.space/1234.txt", "SCI.SPACE"),
        ({}, "hadoop.csv", None),
    ],
)
def test_labels_from_member_names(spec, member, label):
    assert ProfileSpec.from_dict(spec).member_label(member) == label


def test_label_from_folder_needs_a_folder():
    with pytest.raises(InvalidRequest, match=r"in no folder"):
        ProfileSpec.from_dict({"label_from": "folder"}).member_label("top.txt")


def test_formats_from_names_and_wanted_members():
    spec = ProfileSpec.from_dict({"query": "SELECT 1", "label_from": "member", "members": ["*.sqlite3.bz2"]})
    assert spec.format_of("a.sqlite3.bz2") == "sqlite" and spec.format_of("a.txt") == "lines"
    assert spec.format_of("a.jsonl.gz") == "jsonl" and spec.format_of("a.csv") == "csv"
    assert ProfileSpec().format_of("a.csv") == "comprehend-csv"
    with pytest.raises(InvalidRequest, match=r"cannot tell the format of notes.xyz"):
        spec.format_of("notes.xyz")
    assert spec.wants_member("x/a.sqlite3.bz2") and not spec.wants_member("a.csv")
    assert not ProfileSpec().wants_member("__MACOSX/._a.csv") and not ProfileSpec().wants_member(".DS_Store")
    assert strip_extensions("hadoop.sqlite3.bz2") == "hadoop"
