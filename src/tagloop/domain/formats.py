"""Streaming readers for the input formats tagloop accepts.

Readers only parse syntax: they turn a byte stream into :class:`RawRow` records or
:class:`~tagloop.errors.RowIssue` values (bad quoting, invalid UTF-8, bad JSON, missing
columns), one at a time, so a file of any size is read in constant memory. What the
values mean (empty text, unknown label, size limits) is checked by :mod:`validation`.

Formats:

- ``comprehend-csv``: no header; ``LABEL,text`` per row (Amazon Comprehend's format).
  Unquoted commas in the text are kept, since the label is always the first column.
- ``jsonl``: one JSON object per line, ``{"text": ..., "labels": [...]}`` (``label`` also
  accepted); column mapping picks other keys and joins several text keys.
- ``csv``: a CSV file with a header row, read through a column mapping.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from tagloop.domain.limits import Limits
from tagloop.errors import InvalidRequest, RowIssue

COMPREHEND_CSV = "comprehend-csv"
JSONL = "jsonl"
CSV = "csv"
FORMATS = (COMPREHEND_CSV, JSONL, CSV)

_SURROGATE = re.compile("[\udc80-\udcff]")
_TEXT_JOINER = "\n"
_NUL_REASON = "contains a NUL character (not allowed in text)"


@dataclass(frozen=True, slots=True)
class RawRow:
    """A syntactically valid record: where it started, its text and its label value(s)."""

    line: int
    text: str
    labels: str | list[object] | None
    # the first record of a Comprehend CSV only: its columns (a header row is told by them)
    fields: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    # the archive member (or a profile's query) the row comes from, named by its issues
    member: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FormatSpec:
    """How to read a file: its format and, for mapped formats, which columns hold what."""

    format: str = COMPREHEND_CSV
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidRequest(f"unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        if self.format == COMPREHEND_CSV and (self.text_columns or self.label_column):
            raise InvalidRequest(
                "column mapping needs a file with named columns: use --format csv (header row) or jsonl"
            )

    @classmethod
    def infer(
        cls,
        source: str,
        format: str | None = None,
        text_columns: tuple[str, ...] = (),
        label_column: str | None = None,
    ) -> FormatSpec:
        """Pick the format from an explicit choice, else from the mapping and the file name."""
        if format is None:
            name = source.lower().removesuffix(".gz").removesuffix(".bz2").removesuffix(".zst")
            if name.endswith((".jsonl", ".json", ".ndjson")):
                format = JSONL
            elif text_columns or label_column:
                format = CSV
            else:
                format = COMPREHEND_CSV
        return cls(format=format, text_columns=tuple(text_columns), label_column=label_column)


def read_rows(
    stream: BinaryIO,
    spec: FormatSpec,
    max_field_chars: int = Limits.max_text_bytes,
    require_labels: bool = False,
) -> Iterator[RawRow | RowIssue]:
    """Yield every record of ``stream`` (bytes) as a RawRow, or a RowIssue where it is malformed.

    A CSV field longer than ``max_field_chars`` is reported instead of being read into memory.
    With ``require_labels``, a header with no label column is refused at once (instead of
    every row being reported without a label).
    """
    csv.field_size_limit(max_field_chars + 1)
    if spec.format == JSONL:
        return _read_jsonl(stream, spec)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    if spec.format == CSV:
        return _read_mapped_csv(text, spec, require_labels)
    return _read_comprehend_csv(text)


def _csv_records(text: io.TextIOBase) -> Iterator[tuple[int, list[str] | RowIssue]]:
    """Yield (start line, fields) per non-blank record, or a RowIssue for a record csv rejects."""
    reader = csv.reader(text, strict=True)
    last = 0
    while True:
        start = last + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            last = reader.line_num
            yield start, RowIssue(start, _csv_reason(exc))
            continue
        last = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if any(_SURROGATE.search(f) for f in fields):
            yield start, RowIssue(start, "invalid UTF-8 (the file must be UTF-8 encoded)")
            continue
        if any("\x00" in f for f in fields):
            yield start, RowIssue(start, _NUL_REASON)
            continue
        yield start, fields


def csv_records(text: io.TextIOBase) -> Iterator[tuple[int, list[str] | RowIssue]]:
    """(start line, fields) per non-blank CSV record, or a RowIssue where csv rejects one (the
    readers of import profiles map the fields themselves)."""
    return _csv_records(text)


def _csv_reason(exc: csv.Error) -> str:
    message = str(exc)
    if "field larger than field limit" in message:
        return f"field longer than {csv.field_size_limit():,} characters (TAGLOOP_MAX_TEXT_BYTES)"
    if "unexpected end of data" in message:
        return "bad quoting: a quoted field is never closed"
    if "NUL" in message:
        return _NUL_REASON
    return f"bad quoting: {message}"


def _read_comprehend_csv(text: io.TextIOBase) -> Iterator[RawRow | RowIssue]:
    first = True
    for line, fields in _csv_records(text):
        if isinstance(fields, RowIssue):
            yield fields
        elif len(fields) < 2:
            yield RowIssue(line, "missing text: expected LABEL,text")
        else:
            body = fields[1] if len(fields) == 2 else ",".join(fields[1:])
            # the first record keeps its columns: the validator tells a header row from them
            yield RawRow(line, body, fields[0], tuple(fields) if first else None)
        first = False


def _read_mapped_csv(
    text: io.TextIOBase, spec: FormatSpec, require_labels: bool = False
) -> Iterator[RawRow | RowIssue]:
    records = _csv_records(text)
    header: list[str] | None = None
    for line, fields in records:
        if isinstance(fields, RowIssue):
            if header is None:
                raise InvalidRequest(f"cannot read the header row: {fields.reason}")
            yield fields
            continue
        if header is None:
            header = [name.strip() for name in fields]
            text_idx, label_idx = _resolve_columns(header, spec, require_labels)
            continue
        if len(fields) != len(header):
            yield RowIssue(line, f"expected {len(header)} columns as in the header, found {len(fields)}")
            continue
        body = _TEXT_JOINER.join(fields[i] for i in text_idx if fields[i].strip())
        yield RawRow(line, body, fields[label_idx] if label_idx is not None else None)


def _resolve_columns(
    header: list[str], spec: FormatSpec, require_labels: bool = False
) -> tuple[list[int], int | None]:
    columns = f"(columns: {', '.join(header)})"
    suggested_text, suggested_label = suggest_columns(header)
    if not spec.text_columns and "text" not in header:  # the user named no text column
        example = f", e.g. --text-column {shlex.quote(','.join(suggested_text))}" if suggested_text else ""
        raise InvalidRequest(
            f"no text column: name the column(s) holding the text with --text-column{example} {columns}"
        )
    text_columns = spec.text_columns or ("text",)
    missing = [c for c in text_columns if c not in header]
    label_column = spec.label_column
    if label_column is None:
        label_column = next((c for c in ("labels", "label") if c in header), None)
    elif label_column not in header:
        missing.append(label_column)
    if missing:
        raise InvalidRequest(
            f"column{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in the header "
            f"{columns}; choose with --text-column and --label-column"
        )
    if label_column is None and require_labels:
        example = f", e.g. --label-column {shlex.quote(suggested_label)}" if suggested_label else ""
        raise InvalidRequest(
            f"no label column: name the column holding the labels with --label-column{example} {columns}"
        )
    label_idx = header.index(label_column) if label_column is not None else None
    return [header.index(c) for c in text_columns], label_idx


# What the columns of exported files (ticket systems, spreadsheets) are commonly called.
_LABEL_NAMES = (
    "label",
    "labels",
    "category",
    "categories",
    "class",
    "tag",
    "tags",
    "topic",
    "intent",
    "queue",
    "project",
    "team",
    "component",
    "department",
    "group",
    "type",
)
_TEXT_NAMES = (
    "text",
    "subject",
    "title",
    "summary",
    "short description",
    "description",
    "body",
    "message",
    "content",
    "comment",
    "comments",
    "details",
    "question",
    "review",
)
_HEADER_NAME = re.compile(r"[^\W\d][\w .()#/-]{0,39}")


def _plain(name: str) -> str:
    return re.sub(r"[\s_.-]+", " ", name.strip().lower())


def looks_like_header(fields: tuple[str, ...] | list[str]) -> bool:
    """Whether a CSV record looks like a row of column names rather than data: at least two
    distinct, short, name-like fields (letters first, at most three words), one of them named
    as text, label or id columns commonly are."""
    names = [name.strip() for name in fields]
    plain = [_plain(name) for name in names]
    return (
        len(names) >= 2
        and len(set(plain)) == len(names)
        and all(_HEADER_NAME.fullmatch(name) and len(name.split()) <= 3 for name in names)
        and any(_is_id(name) or name in _TEXT_NAMES or _label_like(name) for name in plain)
    )


def _label_like(name: str) -> bool:
    words = name.split()
    return bool(words) and (name in _LABEL_NAMES or words[-1] in _LABEL_NAMES)


_NOT_TEXT = re.compile(r"(^|\s)(id|key|number|no|date|time|at|created|updated|status|priority)$|id$")


def _is_id(name: str) -> bool:
    return name == "id" or name.endswith(" id") or name in ("key", "number", "no")


def column_options(header: list[str] | tuple[str, ...]) -> str | None:
    """The options that read a file with this header, as a user would type them; None when no
    column is named like a label."""
    text, label = suggest_columns(header)
    if label is None or not text:
        return None
    return f"--text-column {shlex.quote(','.join(text))} --label-column {shlex.quote(label)}"


def suggest_columns(header: list[str] | tuple[str, ...]) -> tuple[list[str], str | None]:
    """Guess, from their names only, the text columns and the label column of a header: the
    label is the first column named like a category; the text, the columns named like text
    (else every other column that is not an id, a date or a number). Nothing is guessed when
    no column is named like a label."""
    plain = [_plain(name) for name in header]
    label = next((header[i] for i, name in enumerate(plain) if _label_like(name)), None)
    text = [header[i] for i, name in enumerate(plain) if name in _TEXT_NAMES and header[i] != label]
    if not text:
        text = [
            header[i] for i, name in enumerate(plain) if header[i] != label and not _NOT_TEXT.search(name)
        ]
    return text, label


def _read_jsonl(stream: BinaryIO, spec: FormatSpec) -> Iterator[RawRow | RowIssue]:
    text_keys = spec.text_columns or ("text",)
    label_keys = (spec.label_column,) if spec.label_column else ("labels", "label")
    decoder = codecs.getincrementaldecoder("utf-8")
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            line = decoder().decode(raw, final=True)
        except UnicodeDecodeError:
            yield RowIssue(number, "invalid UTF-8 (the file must be UTF-8 encoded)")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield RowIssue(number, f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(record, dict):
            yield RowIssue(number, "expected a JSON object per line")
            continue
        missing = [k for k in text_keys if k not in record]
        if missing:
            yield RowIssue(number, f"missing key {', '.join(map(repr, missing))}")
            continue
        parts = [record[k] for k in text_keys]
        if any(p is not None and not isinstance(p, str) for p in parts):
            yield RowIssue(number, "text must be a string")
            continue
        body = _TEXT_JOINER.join(p for p in parts if p and p.strip())
        if "\x00" in body:
            yield RowIssue(number, _NUL_REASON)
            continue
        labels = next((record[k] for k in label_keys if k in record), None)
        if labels is not None and not isinstance(labels, (str, list)):
            yield RowIssue(number, "labels must be a string or a list of strings")
            continue
        yield RawRow(number, body, labels)
