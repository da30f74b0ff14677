"""Streaming readers of the input formats (domain/formats.py)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tagloop.domain.formats import (
    COMPREHEND_CSV,
    CSV,
    FORMATS,
    JSONL,
    FormatSpec,
    RawRow,
    column_options,
    looks_like_header,
    read_rows,
    suggest_columns,
)
from tagloop.errors import InvalidRequest, RowIssue

BOM = b"\xef\xbb\xbf"
INVALID_UTF8 = "invalid UTF-8 (the file must be UTF-8 encoded)"


@pytest.fixture(autouse=True)
def _restore_csv_field_limit():
    """read_rows sets the process-wide csv field limit; keep other tests unaffected."""
    before = csv.field_size_limit()
    yield
    csv.field_size_limit(before)


def read(data: bytes, spec: FormatSpec | None = None, max_field_chars: int = 1_000_000) -> list:
    return list(read_rows(io.BytesIO(data), spec or FormatSpec(), max_field_chars))


def rows_only(items: list) -> list[RawRow]:
    return [item for item in items if isinstance(item, RawRow)]


def issues_only(items: list) -> list[RowIssue]:
    return [item for item in items if isinstance(item, RowIssue)]


# ---- Comprehend CSV ----------------------------------------------------------------------
def test_comprehend_csv_label_then_text():
    assert read(b"BILLING,Invoice is wrong\nNETWORK,VPN drops\n") == [
        RawRow(1, "Invoice is wrong", "BILLING"),
        RawRow(2, "VPN drops", "NETWORK"),
    ]


def test_comprehend_csv_has_no_header_row():
    # The first line is data, even if it looks like a header.
    assert read(b"label,text\nA,x\n") == [RawRow(1, "text", "label"), RawRow(2, "x", "A")]


def test_comprehend_csv_first_record_keeps_its_columns_for_header_detection():
    first, second = read(b'ticket_id,subject,"description",category\nA,x,y\n')
    assert first.fields == ("ticket_id", "subject", "description", "category")
    assert (first.labels, first.text) == ("ticket_id", "subject,description,category")
    assert second.fields is None  # only the first: rows stay small


@pytest.mark.parametrize(
    "fields",
    [
        ["ticket_id", "subject", "description", "category"],
        ["label", "text"],
        ["Number", "Short description", "Assignment group"],
        ["id", "body", "Category"],
    ],
)
def test_rows_of_column_names_look_like_a_header(fields):
    assert looks_like_header(fields)


@pytest.mark.parametrize(
    "fields",
    [
        ["NETWORK", "vpn down"],  # data: no column name among them
        ["ACCESS", "Password reset needed for my account today"],  # too many words
        ["text", "Text"],  # the same name twice
        ["label"],  # one column
        ["123", "text"],  # a number
        ["label", "x" * 60],  # too long for a name
    ],
)
def test_rows_of_data_do_not_look_like_a_header(fields):
    assert not looks_like_header(fields)


def test_columns_are_suggested_from_their_names():
    header = ["ticket_id", "subject", "description", "category"]
    assert suggest_columns(header) == (["subject", "description"], "category")
    assert column_options(header) == "--text-column subject,description --label-column category"
    servicenow = ["Number", "Short description", "Assignment group", "Opened at"]
    assert suggest_columns(servicenow) == (["Short description"], "Assignment group")
    assert column_options(servicenow) == "--text-column 'Short description' --label-column 'Assignment group'"
    # no column named like text: every column but ids, dates and the label
    assert suggest_columns(["key", "created_at", "notes", "summary2", "team"]) == (
        ["notes", "summary2"],
        "team",
    )
    assert suggest_columns(["a", "b"]) == (["a", "b"], None)
    assert column_options(["a", "b"]) is None  # nothing named like a label: no guess


def test_comprehend_csv_quoted_text_with_commas_and_doubled_quotes():
    data = b'SOFTWARE,"Outlook says ""add-in disabled"", again, and again"\n'
    assert read(data) == [RawRow(1, 'Outlook says "add-in disabled", again, and again', "SOFTWARE")]


def test_comprehend_csv_quoted_label_and_text():
    assert read(b'"A|B","x"\n') == [RawRow(1, "x", "A|B")]


def test_comprehend_csv_unquoted_extra_commas_are_kept_in_the_text():
    assert read(b"A,hello, world, again\nB,a,,b\n") == [
        RawRow(1, "hello, world, again", "A"),
        RawRow(2, "a,,b", "B"),
    ]


def test_comprehend_csv_quoted_newlines_and_start_lines():
    data = b'A,one\nB,"multi\nline\ntext"\nC,after\nD,"two\nlines"\nE,last\n'
    assert read(data) == [
        RawRow(1, "one", "A"),
        RawRow(2, "multi\nline\ntext", "B"),
        RawRow(5, "after", "C"),
        RawRow(6, "two\nlines", "D"),
        RawRow(8, "last", "E"),
    ]


def test_comprehend_csv_crlf_line_endings():
    data = b'A,one\r\nB,"two\r\nlines"\r\nC,three\r\n'
    assert read(data) == [RawRow(1, "one", "A"), RawRow(2, "two\r\nlines", "B"), RawRow(4, "three", "C")]


def test_comprehend_csv_last_line_without_newline():
    assert read(b"A,one\nB,two") == [RawRow(1, "one", "A"), RawRow(2, "two", "B")]


def test_comprehend_csv_blank_lines_are_skipped_but_counted():
    data = b"\nA,one\n\n   \n\nB,two\n\n"
    assert read(data) == [RawRow(2, "one", "A"), RawRow(6, "two", "B")]


def test_comprehend_csv_empty_file():
    assert read(b"") == []
    assert read(b"\n\n") == []


def test_comprehend_csv_utf8_bom_is_stripped():
    assert read(BOM + "HARDWARE,Écran noir\n".encode()) == [RawRow(1, "Écran noir", "HARDWARE")]


def test_comprehend_csv_non_ascii_text():
    text = "Drucker im 3. Stock druckt nur 🙃 Zeichen — 日本語"
    assert read(f"A,{text}\n".encode()) == [RawRow(1, text, "A")]


def test_comprehend_csv_empty_text_is_passed_on_for_validation():
    # Readers only parse syntax; an empty text is refused by validation, not here.
    assert read(b"A,\nB,x\n") == [RawRow(1, "", "A"), RawRow(2, "x", "B")]


def test_comprehend_csv_row_without_text_is_an_issue():
    items = read(b"A,ok\nLONELY\nB,ok\n")
    assert items == [
        RawRow(1, "ok", "A"),
        RowIssue(2, "missing text: expected LABEL,text"),
        RawRow(3, "ok", "B"),
    ]


def test_comprehend_csv_bad_quoting_reports_the_line_and_reading_continues():
    items = read(b'A,ok\nB,"abc"def\nC,fine\n')
    assert items[0] == RawRow(1, "ok", "A")
    assert isinstance(items[1], RowIssue)
    assert items[1].line == 2
    assert items[1].reason.startswith("bad quoting")
    assert items[2] == RawRow(3, "fine", "C")
    assert len(items) == 3


def test_comprehend_csv_bad_quoting_inside_a_multiline_record_reports_its_start():
    items = read(b'A,ok\nB,"multi\nline" junk\nC,ok\n')
    assert items[0] == RawRow(1, "ok", "A")
    assert isinstance(items[1], RowIssue)
    assert items[1].line == 2
    assert "bad quoting" in items[1].reason
    assert items[2] == RawRow(4, "ok", "C")


def test_comprehend_csv_several_bad_rows_are_all_reported():
    items = read(b'A,"x"y\nB,ok\nC,"p"q\nD,ok\n')
    assert [item.line for item in issues_only(items)] == [1, 3]
    assert rows_only(items) == [RawRow(2, "ok", "B"), RawRow(4, "ok", "D")]


def test_comprehend_csv_unclosed_quote_is_reported_at_the_line_it_opens():
    items = read(b'A,ok\nB,"never closed\nC,swallowed\nD,swallowed too\n')
    assert items == [
        RawRow(1, "ok", "A"),
        RowIssue(2, "bad quoting: a quoted field is never closed"),
    ]


def test_comprehend_csv_nul_byte_is_reported_with_its_line():
    items = read(b"A,ok\nB,nul \x00 inside\nC,ok\n")
    assert items[0] == RawRow(1, "ok", "A")
    assert isinstance(items[1], RowIssue), f"a NUL byte must be refused, got {items[1]!r}"
    assert items[1].line == 2
    assert "NUL" in items[1].reason
    assert items[2] == RawRow(3, "ok", "C")


def test_comprehend_csv_invalid_utf8_is_reported_and_later_rows_are_read():
    items = read(b"A,fine\nB,bad \xff byte\nC,also fine\n")
    assert items == [RawRow(1, "fine", "A"), RowIssue(2, INVALID_UTF8), RawRow(3, "also fine", "C")]


def test_comprehend_csv_invalid_utf8_in_the_label_or_a_truncated_sequence():
    items = read(b"\xe9TIQUETTE,text\nA,cut \xe2\x82\nB,ok\n")
    assert items == [RowIssue(1, INVALID_UTF8), RowIssue(2, INVALID_UTF8), RawRow(3, "ok", "B")]


def test_comprehend_csv_invalid_utf8_in_a_multiline_record_reports_its_start():
    items = read(b'A,"first\nsecond \xff\nthird"\nB,ok\n')
    assert items == [RowIssue(1, INVALID_UTF8), RawRow(4, "ok", "B")]


def test_comprehend_csv_latin1_file_is_refused_row_by_row():
    data = "A,café\nB,plain ascii\nC,naïve\n".encode("latin-1")
    items = read(data)
    assert items == [RowIssue(1, INVALID_UTF8), RawRow(2, "plain ascii", "B"), RowIssue(3, INVALID_UTF8)]


def test_comprehend_csv_field_over_the_limit_names_the_setting():
    items = read(b"A," + b"x" * 50 + b"\nB,ok\n", max_field_chars=20)
    assert isinstance(items[0], RowIssue)
    assert items[0].line == 1
    assert "TAGLOOP_MAX_TEXT_BYTES" in items[0].reason
    assert "field longer than" in items[0].reason
    assert items[1] == RawRow(2, "ok", "B")


def test_comprehend_csv_field_at_the_limit_is_read():
    # The byte limit itself is checked by validation; the reader only guards memory.
    items = read(b"A," + b"x" * 20 + b"\n", max_field_chars=20)
    assert items == [RawRow(1, "x" * 20, "A")]


def test_comprehend_csv_reads_a_large_file_lazily():
    body = b"".join(b"L%d,text number %d\n" % (i % 7, i) for i in range(5_000))
    iterator = read_rows(io.BytesIO(body), FormatSpec())
    first = next(iterator)
    assert first == RawRow(1, "text number 0", "L0")
    rest = list(iterator)
    assert len(rest) == 4_999
    assert rest[-1] == RawRow(5_000, "text number 4999", f"L{4_999 % 7}")


def test_comprehend_csv_round_trips_what_csv_writer_writes():
    rows = [
        ["A", 'quote " and, comma'],
        ["B", "line one\nline two\n\nline four"],
        ["C|D", "  padded  "],
        ["E", "tab\there"],
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    items = read(buffer.getvalue().encode())
    assert [(item.labels, item.text) for item in items] == [tuple(row) for row in rows]
    assert [item.line for item in items] == [1, 2, 6, 7]


# ---- JSON lines --------------------------------------------------------------------------
JSONL_SPEC = FormatSpec(format=JSONL)


def jsonl(*records: object) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n" for r in records
    )


def test_jsonl_labels_list_and_label_string():
    data = jsonl(
        {"text": "a", "labels": ["X", "Y"]}, {"text": "b", "label": "Z"}, {"text": "c", "labels": "P|Q"}
    )
    assert read(data, JSONL_SPEC) == [
        RawRow(1, "a", ["X", "Y"]),
        RawRow(2, "b", "Z"),
        RawRow(3, "c", "P|Q"),
    ]


def test_jsonl_labels_key_wins_over_label():
    assert read(jsonl({"text": "a", "label": "L", "labels": ["M"]}), JSONL_SPEC) == [RawRow(1, "a", ["M"])]


def test_jsonl_missing_labels_are_none():
    assert read(jsonl({"text": "a"}), JSONL_SPEC) == [RawRow(1, "a", None)]


def test_jsonl_bom_blank_lines_and_crlf():
    data = BOM + b'{"text": "a", "label": "A"}\r\n\r\n  \n{"text": "b", "label": "B"}'
    assert read(data, JSONL_SPEC) == [RawRow(1, "a", "A"), RawRow(4, "b", "B")]


def test_jsonl_unicode_text_is_kept():
    text = "Ünïcödé 🙂 \u2028 separator inside"
    assert read(jsonl({"text": text, "label": "A"}), JSONL_SPEC) == [RawRow(1, text, "A")]


def test_jsonl_newlines_inside_json_strings_stay_one_record():
    data = jsonl({"text": "line one\nline two", "label": "A"}, {"text": "b", "label": "B"})
    assert read(data, JSONL_SPEC) == [RawRow(1, "line one\nline two", "A"), RawRow(2, "b", "B")]


def test_jsonl_every_problem_is_reported_with_its_line():
    data = jsonl(
        {"text": "ok", "label": "A"},
        b"{not json",
        b"[1, 2]",
        b'"just a string"',
        {"labels": ["A"]},
        {"text": 5, "label": "A"},
        {"text": ["a", "b"], "label": "A"},
        b'{"text": "bad \xff", "label": "A"}',
        {"text": "c", "label": 5},
        {"text": "d", "labels": {"A": 1}},
        {"text": "last", "label": "B"},
    )
    items = read(data, JSONL_SPEC)
    assert items[0] == RawRow(1, "ok", "A")
    assert items[-1] == RawRow(11, "last", "B")
    issues = items[1:-1]
    assert all(isinstance(issue, RowIssue) for issue in issues)
    assert [issue.line for issue in issues] == list(range(2, 11))
    reasons = [issue.reason for issue in issues]
    assert reasons[0].startswith("invalid JSON:")
    assert "column" in reasons[0]
    assert reasons[1] == "expected a JSON object per line"
    assert reasons[2] == "expected a JSON object per line"
    assert reasons[3] == "missing key 'text'"
    assert reasons[4] == "text must be a string"
    assert reasons[5] == "text must be a string"
    assert reasons[6] == INVALID_UTF8
    assert reasons[7] == "labels must be a string or a list of strings"
    assert reasons[8] == "labels must be a string or a list of strings"


def test_jsonl_null_text_becomes_empty_for_validation():
    assert read(jsonl({"text": None, "label": "A"}), JSONL_SPEC) == [RawRow(1, "", "A")]


def test_jsonl_column_mapping_joins_text_keys_and_picks_the_label_key():
    spec = FormatSpec(format=JSONL, text_columns=("subject", "body"), label_column="category")
    data = jsonl(
        {"subject": "Printer", "body": "Paper jam", "category": "HARDWARE", "labels": ["ignored"]},
        {"subject": "", "body": "Only a body", "category": "X"},
        {"subject": "   ", "body": None, "category": "Y"},
        {"subject": "No body key", "category": "Z"},
        {"subject": "s", "body": "b"},
    )
    assert read(data, spec) == [
        RawRow(1, "Printer\nPaper jam", "HARDWARE"),
        RawRow(2, "Only a body", "X"),
        RawRow(3, "", "Y"),
        RowIssue(4, "missing key 'body'"),
        RawRow(5, "s\nb", None),
    ]


# ---- generic CSV with a header -------------------------------------------------------------
def test_csv_default_columns_text_and_labels():
    spec = FormatSpec(format=CSV)
    assert read(b"id,text,labels\n1,hello,A|B\n2,bye,C\n", spec) == [
        RawRow(2, "hello", "A|B"),
        RawRow(3, "bye", "C"),
    ]
    assert read(b"label,text\nA,hello\n", spec) == [RawRow(2, "hello", "A")]


def test_csv_without_a_label_column_gives_no_labels():
    assert read(b"text\nhello\n", FormatSpec(format=CSV)) == [RawRow(2, "hello", None)]


def test_csv_mapping_joins_text_columns_with_newline_and_skips_empty_ones():
    spec = FormatSpec(format=CSV, text_columns=("subject", "body"), label_column="cat")
    data = b'id,subject,body,cat\n1,Hi,There,A\n2,,Only body,B\n3,"  ",  ,C\n4,"multi\nline",b,D\n5,S,B,E\n'
    assert read(data, spec) == [
        RawRow(2, "Hi\nThere", "A"),
        RawRow(3, "Only body", "B"),
        RawRow(4, "", "C"),
        RawRow(5, "multi\nline\nb", "D"),
        RawRow(7, "S\nB", "E"),
    ]


def test_csv_mapping_follows_the_order_of_text_columns():
    spec = FormatSpec(format=CSV, text_columns=("body", "subject"), label_column="cat")
    assert read(b"subject,body,cat\nS,B,A\n", spec) == [RawRow(2, "B\nS", "A")]


def test_csv_header_bom_and_spaces_are_stripped():
    spec = FormatSpec(format=CSV, text_columns=("text",), label_column="labels")
    assert read(BOM + b" text , labels \nhello,A\n", spec) == [RawRow(2, "hello", "A")]


def test_csv_unknown_column_names_the_available_columns():
    spec = FormatSpec(format=CSV, text_columns=("subject", "body"), label_column="category")
    with pytest.raises(InvalidRequest) as caught:
        read(b"id,subject,topic\n1,x,A\n", spec)
    message = str(caught.value)
    assert "body" in message
    assert "category" in message
    assert "(columns: id, subject, topic)" in message
    assert "--text-column" in message


def test_csv_default_text_column_missing_is_refused():
    with pytest.raises(InvalidRequest) as caught:
        read(b"body,labels\nx,A\n", FormatSpec(format=CSV))
    assert "text" in str(caught.value)
    assert "columns: body, labels" in str(caught.value)


def test_csv_label_column_alone_says_a_text_column_is_needed():
    """Was `column text not in the header`, a column the user never named."""
    spec = FormatSpec(format=CSV, label_column="category")
    with pytest.raises(InvalidRequest) as caught:
        read(b"ticket_id,subject,description,category\n1,a,b,C\n", spec)
    assert str(caught.value) == (
        "no text column: name the column(s) holding the text with --text-column, e.g. "
        "--text-column subject,description (columns: ticket_id, subject, description, category)"
    )


def test_csv_without_a_label_column_is_refused_when_labels_are_required():
    """Was one `missing label` row per line of the file."""
    spec = FormatSpec(format=CSV, text_columns=("description",))
    data = b"ticket_id,subject,description,category\n1,a,b,C\n"
    with pytest.raises(InvalidRequest) as caught:
        list(read_rows(io.BytesIO(data), spec, require_labels=True))
    assert str(caught.value) == (
        "no label column: name the column holding the labels with --label-column, e.g. "
        "--label-column category (columns: ticket_id, subject, description, category)"
    )
    assert read(data, spec) == [RawRow(2, "b", None)]  # unlabelled data may have none


def test_csv_wrong_column_count_is_a_row_issue():
    spec = FormatSpec(format=CSV, text_columns=("body",), label_column="cat")
    items = read(b"id,body,cat\n1,ok,A\n2,short\n3,too,many,B\n4,fine,C\n", spec)
    assert items == [
        RawRow(2, "ok", "A"),
        RowIssue(3, "expected 3 columns as in the header, found 2"),
        RowIssue(4, "expected 3 columns as in the header, found 4"),
        RawRow(5, "fine", "C"),
    ]


def test_csv_blank_lines_skipped_and_issues_after_the_header_are_reported():
    spec = FormatSpec(format=CSV)
    items = read(b'\ntext,label\n\nhello,A\n"bad"x,B\nbad \xff,C\nlast,D\n', spec)
    assert items[0] == RawRow(4, "hello", "A")
    assert isinstance(items[1], RowIssue)
    assert items[1].line == 5
    assert items[1].reason.startswith("bad quoting")
    assert items[2] == RowIssue(6, INVALID_UTF8)
    assert items[3] == RawRow(7, "last", "D")


def test_csv_unreadable_header_is_refused():
    with pytest.raises(InvalidRequest, match="cannot read the header row"):
        read(b'text,"label\nx,A\n', FormatSpec(format=CSV))


def test_csv_empty_file_has_no_rows():
    assert read(b"", FormatSpec(format=CSV)) == []


# ---- FormatSpec ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("train.csv", COMPREHEND_CSV),
        ("train.CSV.gz", COMPREHEND_CSV),
        ("train.txt", COMPREHEND_CSV),
        ("s3://bucket/data/train.csv.bz2", COMPREHEND_CSV),
        ("train.jsonl", JSONL),
        ("train.JSONL", JSONL),
        ("train.jsonl.gz", JSONL),
        ("train.json", JSONL),
        ("train.ndjson.zst", JSONL),
        ("/tmp/dir.jsonl/train.csv", COMPREHEND_CSV),
    ],
)
def test_infer_format_from_the_file_name(source, expected):
    spec = FormatSpec.infer(source)
    assert spec.format == expected
    assert spec.text_columns == ()
    assert spec.label_column is None


def test_infer_column_mapping_implies_csv():
    spec = FormatSpec.infer("train.csv.gz", text_columns=("subject", "body"))
    assert spec == FormatSpec(format=CSV, text_columns=("subject", "body"))
    assert FormatSpec.infer("train.csv", label_column="cat").format == CSV


def test_infer_jsonl_keeps_its_mapping():
    spec = FormatSpec.infer("train.jsonl", text_columns=["body"], label_column="cat")  # type: ignore[arg-type]
    assert spec == FormatSpec(format=JSONL, text_columns=("body",), label_column="cat")


def test_infer_explicit_format_wins_over_the_name():
    assert FormatSpec.infer("train.jsonl", format=CSV).format == CSV
    assert FormatSpec.infer("data.csv", format=JSONL).format == JSONL


@pytest.mark.parametrize("mapping", [{"text_columns": ("body",)}, {"label_column": "cat"}])
def test_comprehend_csv_with_a_column_mapping_is_refused(mapping):
    with pytest.raises(InvalidRequest, match="column mapping"):
        FormatSpec.infer("train.csv", format=COMPREHEND_CSV, **mapping)
    with pytest.raises(InvalidRequest, match="column mapping"):
        FormatSpec(format=COMPREHEND_CSV, **mapping)


def test_unknown_format_is_refused_naming_the_choices():
    with pytest.raises(InvalidRequest) as caught:
        FormatSpec(format="xml")
    assert "'xml'" in str(caught.value)
    for name in FORMATS:
        assert name in str(caught.value)
