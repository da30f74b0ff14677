"""Semantic checks of input rows and the dataset report (domain/validation.py)."""

from __future__ import annotations

import io
import json

import pytest

from tagloop.domain.formats import CSV as CSV_FORMAT
from tagloop.domain.formats import JSONL, FormatSpec, RawRow, read_rows
from tagloop.domain.limits import Limits
from tagloop.domain.records import LabelledText, Mode
from tagloop.domain.validation import (
    LISTED_DUPLICATES,
    LISTED_LABELS,
    MAX_ISSUES_KEPT,
    QUOTED_CHARS,
    DatasetReport,
    DatasetValidator,
    label_list,
)
from tagloop.errors import DatasetInvalid, InvalidRequest, RowIssue
from tagloop.settings import Settings

MC = Mode.MULTI_CLASS
ML = Mode.MULTI_LABEL
EASY = Limits(min_docs_per_label=1)


def run(
    raw: list[RawRow | RowIssue],
    mode: Mode = MC,
    limits: Limits = EASY,
    **options: object,
) -> tuple[list[LabelledText], DatasetReport]:
    validator = DatasetValidator("data.csv", mode, limits, **options)  # type: ignore[arg-type]
    rows = list(validator.rows(raw))
    return rows, validator.finish()


def refused(raw: list[RawRow | RowIssue], mode: Mode = MC, limits: Limits = EASY, **options: object):
    with pytest.raises(DatasetInvalid) as caught:
        run(raw, mode, limits, **options)
    return caught.value


def only_issue(raw: RawRow, mode: Mode = MC, limits: Limits = EASY, **options: object) -> RowIssue:
    """The reason a single row among good ones is refused."""
    good = [RawRow(1, "ok", "A"), RawRow(2, "fine", "A")]
    error = refused([*good, raw], mode, limits, **options)
    assert len(error.issues) == 1
    assert error.issues[0].line == raw.line
    return error.issues[0]


# ---- valid rows ------------------------------------------------------------------------------
def test_valid_rows_become_labelled_texts_with_their_lines():
    rows, report = run([RawRow(1, "  Printer jams  ", " HARDWARE "), RawRow(3, "VPN down", "NETWORK")])
    assert rows == [LabelledText("Printer jams", ("HARDWARE",), 1), LabelledText("VPN down", ("NETWORK",), 3)]
    assert report.documents == 2
    assert report.label_counts == {"HARDWARE": 1, "NETWORK": 1}


def test_multi_label_string_is_split_deduplicated_and_keeps_order():
    rows, report = run([RawRow(1, "x", "B| A |B|C"), RawRow(2, "y", "A")], ML)
    assert rows[0].labels == ("B", "A", "C")
    assert rows[1].labels == ("A",)
    assert report.label_counts == {"A": 2, "B": 1, "C": 1}


def test_multi_label_json_list_is_deduplicated_and_keeps_order():
    rows, _ = run([RawRow(1, "x", ["Z", "A", "Z", " M "])], ML)
    assert rows[0].labels == ("Z", "A", "M")


def test_multi_class_single_item_list_is_accepted():
    rows, _ = run([RawRow(1, "x", ["A"]), RawRow(2, "y", [" B "])], MC)
    assert [row.labels for row in rows] == [("A",), ("B",)]


def test_custom_delimiter():
    rows, _ = run([RawRow(1, "x", "A; B"), RawRow(2, "y", "C|D")], ML, delimiter=";")
    assert rows[0].labels == ("A", "B")
    assert rows[1].labels == ("C|D",)
    rows, _ = run([RawRow(1, "x", "A::B")], ML, delimiter="::")
    assert rows[0].labels == ("A", "B")


def test_custom_delimiter_in_multi_class_allows_the_default_one():
    rows, _ = run([RawRow(1, "x", "A|B")], MC, delimiter=";")
    assert rows[0].labels == ("A|B",)
    issue = only_issue(RawRow(7, "x", "A;B"), MC, delimiter=";")
    assert "';'" in issue.reason


def test_empty_delimiter_is_refused():
    with pytest.raises(DatasetInvalid, match="delimiter must not be empty"):
        DatasetValidator("data.csv", ML, EASY, delimiter="")


def test_unlabelled_rows_allowed_when_labels_are_not_required():
    rows, report = run(
        [RawRow(1, "x", None), RawRow(2, "y", ""), RawRow(3, "z", []), RawRow(4, "w", "A")],
        require_labels=False,
    )
    assert [row.labels for row in rows] == [(), (), (), ("A",)]
    assert report.documents == 4
    assert report.label_counts == {"A": 1}


# ---- rejection reasons, each with its line -------------------------------------------------
def test_empty_text():
    assert only_issue(RawRow(5, "", "A")) == RowIssue(5, "empty text")


@pytest.mark.parametrize("text", [" ", "\n\t  \r\n", "\u3000\u00a0"])
def test_whitespace_only_text(text):
    assert only_issue(RawRow(6, text, "A")) == RowIssue(6, "empty text")


@pytest.mark.parametrize("labels", [None, "", "   ", []])
def test_missing_label(labels):
    assert only_issue(RawRow(9, "text", labels)) == RowIssue(9, "missing label")


def test_label_with_the_delimiter_in_multi_class_mentions_multi_label():
    issue = only_issue(RawRow(4, "text", "A|B"), MC)
    assert issue.line == 4
    assert "'A|B'" in issue.reason
    assert "multi-label" in issue.reason
    assert "'|'" in issue.reason


def test_several_labels_in_a_json_list_in_multi_class():
    issue = only_issue(RawRow(8, "text", ["A", "B"]), MC)
    assert issue.line == 8
    assert issue.reason.startswith("2 labels given in multi-class mode")
    assert "multi-label" in issue.reason


@pytest.mark.parametrize("labels", ["A||B", "A|", "|A", "A| |B", ["A", ""], ["A", "  "]])
def test_empty_label_part_in_multi_label(labels):
    issue = only_issue(RawRow(3, "text", labels), ML)
    assert issue.reason == f"empty label in {labels!r}"


def test_non_string_labels_in_a_list():
    assert only_issue(RawRow(2, "text", ["A", 3]), ML) == RowIssue(2, "labels must be strings")
    assert only_issue(RawRow(2, "text", [None]), MC) == RowIssue(2, "labels must be strings")


def test_text_size_is_counted_in_utf8_bytes():
    limits = Limits(max_text_bytes=10, min_docs_per_label=1)
    text = "é" * 6  # 6 characters, 12 bytes
    assert len(text) <= limits.max_text_bytes < len(text.encode("utf-8"))
    issue = only_issue(RawRow(12, text, "A"), limits=limits)
    assert issue.line == 12
    assert "12 bytes" in issue.reason
    assert "limit of 10" in issue.reason
    assert "TAGLOOP_MAX_TEXT_BYTES" in issue.reason


def test_text_size_at_the_limit_is_accepted_and_surrounding_spaces_do_not_count():
    limits = Limits(max_text_bytes=10, min_docs_per_label=1)
    rows, _ = run([RawRow(1, "   " + "é" * 5 + "   ", "A"), RawRow(2, "x" * 10, "A")], limits=limits)
    assert [row.text for row in rows] == ["é" * 5, "x" * 10]
    assert only_issue(RawRow(3, "x" * 11, "A"), limits=limits).line == 3


def test_label_longer_than_max_label_chars():
    limits = Limits(max_label_chars=5, min_docs_per_label=1)
    run([RawRow(1, "t", "ABCDE"), RawRow(2, "t", "ÉÉÉÉÉ")], limits=limits)  # 5 characters are fine
    issue = only_issue(RawRow(14, "text", "ABCDEF"), limits=limits)
    assert issue.line == 14
    assert "6 characters" in issue.reason
    assert "limit of 5" in issue.reason
    assert "TAGLOOP_MAX_LABEL_CHARS" in issue.reason


def test_label_length_is_checked_on_every_part_in_multi_label():
    limits = Limits(max_label_chars=3, min_docs_per_label=1)
    issue = only_issue(RawRow(2, "text", "AB|ABCD"), ML, limits=limits)
    assert "TAGLOOP_MAX_LABEL_CHARS" in issue.reason


def test_reader_issues_are_passed_through():
    error = refused([RawRow(1, "ok", "A"), RowIssue(2, "bad quoting: x"), RawRow(3, "ok", "A")])
    assert error.issues == [RowIssue(2, "bad quoting: x")]


def test_all_rejected_rows_are_listed_not_just_the_first():
    raw: list[RawRow | RowIssue] = [
        RawRow(1, "fine", "A"),
        RawRow(2, "", "A"),
        RawRow(3, "text", None),
        RowIssue(4, "invalid UTF-8 (the file must be UTF-8 encoded)"),
        RawRow(5, "fine", "B"),
        RawRow(6, "text", "A|B"),
        RawRow(7, "text", ["A", "B"]),
        RawRow(8, "   ", "A"),
    ]
    validator = DatasetValidator("upload.csv", MC, EASY)
    rows = list(validator.rows(raw))
    assert [row.line for row in rows] == [1, 5]
    with pytest.raises(DatasetInvalid) as caught:
        validator.finish()
    error = caught.value
    assert [issue.line for issue in error.issues] == [2, 3, 4, 6, 7, 8]
    assert validator.rejected == 6
    message = str(error)
    assert message.startswith("upload.csv: 6 rows rejected")
    assert "line 2: empty text" in message
    assert "; ..." in message  # more than five issues: the message shows the first five
    assert isinstance(error, InvalidRequest)


def test_more_issues_than_kept_are_counted():
    raw = [RawRow(i, "", "A") for i in range(1, MAX_ISSUES_KEPT + 6)]
    error = refused(raw)
    assert len(error.issues) == MAX_ISSUES_KEPT
    assert error.issues[-1].line == MAX_ISSUES_KEPT
    assert any("5 more rejected rows not listed" in problem for problem in error.problems)


# ---- dataset-wide rules ----------------------------------------------------------------------
def test_no_documents_at_all():
    error = refused([])
    assert error.issues == []
    assert error.problems == ["no documents"]
    assert "no documents" in str(error)


def test_only_rejected_rows_lists_them_instead_of_no_documents():
    error = refused([RawRow(1, "", "A")])
    assert error.issues == [RowIssue(1, "empty text")]
    assert "no documents" not in error.problems


def test_too_many_labels_multi_class():
    limits = Limits(max_labels_multi_class=3, min_docs_per_label=1)
    run([RawRow(i, "t", f"L{i}") for i in range(3)], MC, limits)  # at the limit: fine
    error = refused([RawRow(i, "t", f"L{i}") for i in range(4)], MC, limits)
    assert error.issues == []
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert "4 distinct labels" in problem
    assert "limit of 3" in problem
    assert "TAGLOOP_MAX_LABELS_MULTI_CLASS" in problem
    assert "TAGLOOP_MAX_LABELS_MULTI_CLASS" in str(error)


def test_too_many_labels_multi_label():
    limits = Limits(max_labels_multi_label=2, max_labels_multi_class=100, min_docs_per_label=1)
    run([RawRow(1, "t", "A|B"), RawRow(2, "u", "B")], ML, limits)
    error = refused([RawRow(1, "t", "A|B"), RawRow(2, "u", "C")], ML, limits)
    assert "3 distinct labels" in error.problems[0]
    assert "TAGLOOP_MAX_LABELS_MULTI_LABEL" in error.problems[0]
    assert "MULTI_LABEL" in error.problems[0]


def test_limits_from_settings():
    settings = Settings(max_labels_multi_label=7, min_docs_per_label=3)
    limits = Limits.from_settings(settings)
    assert limits.max_labels_multi_label == 7
    assert limits.min_docs_per_label == 3
    assert limits.max_text_bytes == settings.max_text_bytes


# ---- report ------------------------------------------------------------------------------------
def test_report_counts_duplicates_and_is_sorted():
    raw = [
        RawRow(1, "same text", "B"),
        RawRow(2, "  same text ", "A"),
        RawRow(3, "other", "B"),
        RawRow(4, "same text", "B"),
        RawRow(5, "Same text", "C"),
    ]
    _, report = run(raw)
    assert report.documents == 5
    assert list(report.label_counts) == ["A", "B", "C"]
    assert report.label_counts == {"A": 1, "B": 3, "C": 1}
    assert report.duplicate_texts == 2
    assert "2 documents repeat an earlier text exactly: line 2 (as line 1), line 4 (as line 1)" in (
        report.warnings
    )
    assert report.as_dict() == {
        "documents": 5,
        "label_counts": {"A": 1, "B": 3, "C": 1},
        "duplicate_texts": 2,
        "fingerprint": report.fingerprint,
        "warnings": report.warnings,
    }
    json.dumps(report.as_dict())


def test_rare_labels_are_a_warning_never_a_refusal():
    limits = Limits(min_docs_per_label=3)
    raw = [RawRow(i, f"t{i}", label) for i, label in enumerate(["A", "A", "A", "B", "C", "C"], start=1)]
    rows, report = run(raw, MC, limits)
    assert len(rows) == 6
    assert report.duplicate_texts == 0
    assert report.warnings == [
        "2 labels have fewer than 3 documents (setting TAGLOOP_MIN_DOCS_PER_LABEL): B (1), C (2)"
    ]


def test_one_rare_label_warning_is_singular():
    _, report = run(
        [RawRow(1, "a", "A"), RawRow(2, "b", "A"), RawRow(3, "c", "Z")], limits=Limits(min_docs_per_label=2)
    )
    assert report.warnings == [
        "1 label has fewer than 2 documents (setting TAGLOOP_MIN_DOCS_PER_LABEL): Z (1)"
    ]


def test_no_warnings_when_every_label_has_enough_documents():
    _, report = run([RawRow(i, f"text {i}", "A") for i in range(10)], limits=Limits())
    assert report.warnings == []


def test_rare_multi_label_counts_each_label():
    _, report = run([RawRow(1, "a", "A|B"), RawRow(2, "b", "A")], ML, Limits(min_docs_per_label=2))
    assert report.label_counts == {"A": 2, "B": 1}
    assert report.warnings == [
        "1 label has fewer than 2 documents (setting TAGLOOP_MIN_DOCS_PER_LABEL): B (1)"
    ]


def test_reasons_quote_a_cut_label_never_the_row():
    """Errors go back to API callers: a reason names the line and quotes at most QUOTED_CHARS of
    the field it is about."""
    label = "root:x:0:0:root:/root:/bin/bash|" + "s" * 500
    issue = only_issue(RawRow(3, "some text", label), MC)
    assert issue.reason.startswith("label 'root:x:0:0:root:/root:/bin/bash|sss")
    assert label not in issue.reason and "s" * QUOTED_CHARS not in issue.reason
    issue = only_issue(RawRow(4, "text", "A||" + "s" * 500), ML)
    assert issue.reason.startswith("empty label in 'A||sss") and len(issue.reason) < 100


def test_rare_label_warnings_list_cut_labels_and_count_the_rest():
    labels = [f"{i:02d}" + "L" * 200 for i in range(LISTED_LABELS + 5)]
    labels += ["COMMON"] * 2 * len(labels)  # labels as rare as ids would be refused outright
    raw = [RawRow(i, f"text {i}", label) for i, label in enumerate(labels, start=1)]
    _, report = run(raw, MC, Limits(min_docs_per_label=2, max_label_chars=300))
    (warning,) = report.warnings
    assert warning.endswith(" and 5 more")
    assert warning.count("(1)") == LISTED_LABELS
    assert "L" * QUOTED_CHARS not in warning
    assert label_list(["A", "B"], {"A": 1, "B": 2}) == "A (1), B (2)"


# ---- fingerprint -------------------------------------------------------------------------------
BASE = [RawRow(1, "first text", "A|B"), RawRow(2, "second text", "C")]


def fingerprint(raw: list[RawRow | RowIssue], mode: Mode = ML) -> str:
    return run(raw, mode)[1].fingerprint


def test_fingerprint_is_deterministic_and_a_sha256():
    first = fingerprint(BASE)
    assert first == fingerprint(list(BASE))
    assert len(first) == 64
    int(first, 16)


def test_fingerprint_ignores_line_numbers_and_surrounding_spaces():
    moved = [RawRow(10, "  first text ", " A | B "), RawRow(20, "second text", "C")]
    assert fingerprint(moved) == fingerprint(BASE)


@pytest.mark.parametrize(
    "changed",
    [
        [RawRow(1, "first text", "A|X"), RawRow(2, "second text", "C")],
        [RawRow(1, "first text", "B|A"), RawRow(2, "second text", "C")],
        [RawRow(1, "first text", "A"), RawRow(2, "second text", "C")],
        [RawRow(1, "first text!", "A|B"), RawRow(2, "second text", "C")],
        [RawRow(1, "second text", "C"), RawRow(2, "first text", "A|B")],
        [RawRow(1, "first text", "A|B")],
        [*BASE, RawRow(3, "third", "C")],
    ],
)
def test_fingerprint_changes_when_a_label_or_text_changes(changed):
    assert fingerprint(changed) != fingerprint(BASE)


def test_fingerprint_separates_labels_from_text():
    a = fingerprint([RawRow(1, "B text", "A")], MC)
    b = fingerprint([RawRow(1, "text", "A B")], MC)
    assert a != b


# ---- from a file to rows -------------------------------------------------------------------------
def test_pipeline_from_comprehend_csv():
    data = b'A,one\nB,"two\nlines"\n\nA,three\n'
    validator = DatasetValidator("x.csv", MC, EASY)
    rows = list(validator.rows(read_rows(io.BytesIO(data), FormatSpec())))
    assert rows == [
        LabelledText("one", ("A",), 1),
        LabelledText("two\nlines", ("B",), 2),
        LabelledText("three", ("A",), 5),
    ]
    assert validator.finish().documents == 3


def test_pipeline_reports_reader_and_validation_issues_together():
    data = b'A,one\n,no label\nB,"bad"quote\nC,  \nD,ok\n'
    error = refused(list(read_rows(io.BytesIO(data), FormatSpec())))
    assert [(issue.line, issue.reason.split(":")[0]) for issue in error.issues] == [
        (2, "missing label"),
        (3, "bad quoting"),
        (4, "empty text"),
    ]


def test_pipeline_refuses_a_nul_character_in_jsonl_text():
    # PostgreSQL text columns cannot store U+0000: such a row must be refused with its line.
    data = b'{"text": "ok", "label": "A"}\n{"text": "nul \\u0000 here", "label": "A"}\n'
    raw = list(read_rows(io.BytesIO(data), FormatSpec(format=JSONL)))
    error = refused(raw)
    assert [issue.line for issue in error.issues] == [2]
    assert "nul" in error.issues[0].reason.lower()


# ---- labels that are ids, a header row, duplicates ----------------------------------------------
def ticket_export(rows: int = 30, header: bytes = b"ticket_id,subject,description,category\n") -> bytes:
    """A ticket system's export: a header, then an id, two text columns and a category."""
    lines = [header] + [
        f"INC{100000 + i},subject {i},description of ticket {i},{'NETWORK' if i % 2 else 'EMAIL'}\n".encode()
        for i in range(rows)
    ]
    return b"".join(lines)


def read_and_check(data: bytes, spec: FormatSpec | None = None, **options: object):
    validator = DatasetValidator("export.csv", MC, Limits(), **options)  # type: ignore[arg-type]
    rows = list(validator.rows(read_rows(io.BytesIO(data), spec or FormatSpec())))
    return rows, validator


def test_an_export_with_a_header_read_as_comprehend_csv_is_refused_naming_columns_and_options():
    _, validator = read_and_check(ticket_export())
    with pytest.raises(DatasetInvalid) as caught:
        validator.finish()
    assert caught.value.issues == []
    assert caught.value.problems == [
        "the first row looks like a header (ticket_id, subject, description, category) and the first "
        "column is not a label column: 31 distinct labels for 31 documents, 31 of them on one document "
        "only (ids, not classes a model can learn). A Comprehend CSV has no header and its label first; "
        "to read this file by its header, name its columns: "
        "--text-column subject,description --label-column category"
    ]


def test_ids_as_labels_are_refused_without_a_header_too():
    data = ticket_export(header=b"")
    _, validator = read_and_check(data)
    with pytest.raises(DatasetInvalid, match="the first column is not a label column: 30 distinct labels"):
        validator.finish()
    spec = FormatSpec(format=CSV_FORMAT, text_columns=("description",), label_column="ticket_id")
    _, validator = read_and_check(ticket_export(), spec, label_origin="--label-column ticket_id")
    with pytest.raises(DatasetInvalid) as caught:
        validator.finish()
    assert caught.value.problems[0].startswith("--label-column ticket_id is not a label column: 30 distinct")
    # the right columns train
    spec = FormatSpec(format=CSV_FORMAT, text_columns=("subject", "description"), label_column="category")
    rows, validator = read_and_check(ticket_export(), spec)
    assert len(rows) == 30 and validator.finish().label_counts == {"EMAIL": 15, "NETWORK": 15}


@pytest.mark.parametrize(
    ("unique", "common", "refused_"),
    [
        (19, 0, False),  # too few documents to tell
        (20, 0, True),
        (19, 21, False),  # 20 labels for 40 documents: no more than half as many: rare labels
        (20, 20, True),  # 21 labels for 40 documents, 20 of them on one document
    ],
)
def test_labels_nearly_all_unique_are_refused_from_twenty_documents(unique, common, refused_):
    labels = [f"ID{i}" for i in range(unique)] + ["COMMON"] * common
    raw = [RawRow(i + 1, f"text {i}", label) for i, label in enumerate(labels)]
    if refused_:
        error = refused(raw)
        assert f"{len(set(labels))} distinct labels for {len(labels)} documents" in error.problems[0]
    else:
        run(raw)


def test_many_labels_used_more_than_once_are_not_ids():
    # 30 labels for 40 documents, a third of them on two documents: rare labels, not ids
    labels = [f"ONCE{i}" for i in range(20)] + [f"TWICE{i // 2}" for i in range(20)]
    _, report = run([RawRow(i + 1, f"text {i}", label) for i, label in enumerate(labels)])
    assert len(report.label_counts) == 30


def test_a_header_row_that_passes_is_a_warning():
    data = b"category,text\n" + b"".join(f"{'AB'[i % 2]},text {i}\n".encode() for i in range(12))
    rows, validator = read_and_check(data)
    assert rows[0] == LabelledText("text", ("category",), 1)
    report = validator.finish()
    assert report.warnings[0] == (
        "line 1 looks like a header (category, text) and was read as a document labelled 'category': "
        "a Comprehend CSV has no header row; remove it, or name the columns to read the file by its "
        "header (--text-column and --label-column)"
    )
    assert not any("category (1)" in warning for warning in report.warnings)  # not also a rare label


def test_duplicate_texts_are_named_by_line_up_to_a_limit():
    raw = [RawRow(i, "same" if i % 2 else f"text {i}", "A") for i in range(1, 40)]
    _, report = run(raw)
    (warning,) = report.warnings
    assert report.duplicate_texts == 19
    assert warning.startswith("19 documents repeat an earlier text exactly: line 3 (as line 1), line 5 (as")
    assert warning.count("(as line 1)") == LISTED_DUPLICATES
    assert warning.endswith(f" and {19 - LISTED_DUPLICATES} more")
    _, report = run([RawRow(1, "a", "A"), RawRow(7, "a", "A")])
    assert report.warnings == ["1 document repeats an earlier text exactly: line 7 (as line 1)"]


def test_every_rejected_row_is_handed_over_beyond_those_kept():
    heard: list[RowIssue] = []
    raw = [RawRow(i, "", "A") for i in range(1, MAX_ISSUES_KEPT + 6)]
    error = refused(raw, on_issue=heard.append)
    assert len(error.issues) == MAX_ISSUES_KEPT
    assert [issue.line for issue in heard] == list(range(1, MAX_ISSUES_KEPT + 6))


def test_rare_labels_warning_can_be_left_out():
    raw = [RawRow(1, "a", "A"), RawRow(2, "b", "B")]
    assert run(raw, limits=Limits())[1].warnings != []
    assert run(raw, limits=Limits(), warn_rare_labels=False)[1].warnings == []
