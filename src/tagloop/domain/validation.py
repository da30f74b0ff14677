"""Semantic checks of input rows and the dataset report built while reading them.

Reasons and warnings name rows by line number and quote only what the reason is about (a
label, cut to :data:`QUOTED_CHARS`), never a whole line: errors and version warnings go back
to API callers, who get no more of a file than that.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from tagloop.domain.formats import RawRow, column_options, looks_like_header
from tagloop.domain.limits import Limits, over_limit, utf8_size_over
from tagloop.domain.records import LabelledText, Mode
from tagloop.errors import DatasetInvalid, RowIssue

MAX_ISSUES_KEPT = 1_000
QUOTED_CHARS = 60  # the most of a row's content a reason quotes
LISTED_LABELS = 20  # labels named in one warning; the rest are counted
LISTED_DUPLICATES = 10  # repeated texts named by line in the warning; the rest are counted
# Labels "nearly all unique": a set of at least SPREAD_MIN_DOCUMENTS documents with more
# distinct labels than SPREAD_MAX_SHARE of its documents, SPREAD_SINGLETONS of them on one
# document only, holds ids (ticket numbers, row keys), not classes anything can learn.
SPREAD_MIN_DOCUMENTS = 20
SPREAD_MAX_SHARE = 0.5
SPREAD_SINGLETONS = 0.9
_blake2b = hashlib.blake2b
LABEL_CACHE = 10_000  # distinct label strings whose parsing is remembered


def excerpt(value: object, limit: int = QUOTED_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters: enough to find the row, not its content."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def label_list(labels: Iterable[str], counts: dict[str, int] | None = None) -> str:
    """Labels for a warning: the first :data:`LISTED_LABELS`, each cut, with counts if given."""
    labels = list(labels)
    shown = [
        (label if len(label) <= QUOTED_CHARS else label[: QUOTED_CHARS - 1] + "…")
        + (f" ({counts[label]})" if counts is not None else "")
        for label in labels[:LISTED_LABELS]
    ]
    more = len(labels) - LISTED_LABELS
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


@dataclass
class DatasetReport:
    """What a validated dataset holds: counts per label, warnings, a fingerprint."""

    documents: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)
    duplicate_texts: int = 0
    fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "documents": self.documents,
            "label_counts": self.label_counts,
            "duplicate_texts": self.duplicate_texts,
            "fingerprint": self.fingerprint,
            "warnings": self.warnings,
        }


class DatasetValidator:
    """Turns raw rows into :class:`LabelledText`, collecting every issue instead of stopping.

    Use :meth:`rows` to stream the valid rows, then :meth:`finish` for the report; it raises
    :class:`DatasetInvalid` listing every rejected row if there was any.
    """

    def __init__(
        self,
        source: str,
        mode: Mode,
        limits: Limits,
        delimiter: str = "|",
        require_labels: bool = True,
        warn_rare_labels: bool = True,
        label_origin: str | None = None,
        on_issue: Callable[[RowIssue], None] | None = None,
    ) -> None:
        """``warn_rare_labels``: warn about labels under ``min_docs_per_label`` (a rule for
        training data). ``label_origin`` says where labels come from (e.g. ``--label-column
        ticket_id``) for the message refusing labels that look like ids. ``on_issue`` hears
        every rejected row, also those beyond the :data:`MAX_ISSUES_KEPT` kept for the error."""
        if not delimiter:
            raise DatasetInvalid(source, [], ["the label delimiter must not be empty"])
        self.source = source
        self.mode = mode
        self.limits = limits
        self.delimiter = delimiter
        self.require_labels = require_labels
        self.warn_rare_labels = warn_rare_labels
        self.label_origin = label_origin
        self.on_issue = on_issue
        self.issues: list[RowIssue] = []
        self.rejected = 0
        self._counts: Counter[str] = Counter()
        self._seen: dict[bytes, int] = {}  # text hash -> the line it first appeared on
        self._duplicates = 0
        self._duplicate_lines: list[tuple[int, int]] = []  # (line, line of the earlier text)
        self._header: tuple[str, ...] | None = None  # the first record's columns, if it looks like a header
        self._header_label: str | None = None
        self._digest = hashlib.sha256()
        self._documents = 0
        self._label_cache: dict[str, tuple[str, ...] | str] = {}  # label string -> labels or reason
        self._label_bytes: dict[tuple[str, ...], bytes] = {}  # labels -> their part of the fingerprint

    def rows(self, raw_rows: Iterable[RawRow | RowIssue]) -> Iterator[LabelledText]:
        for raw in raw_rows:
            if isinstance(raw, RawRow) and raw.fields is not None and looks_like_header(raw.fields):
                self._header = tuple(name.strip() for name in raw.fields)
                self._header_label = raw.labels.strip() if isinstance(raw.labels, str) else None
            result = raw if isinstance(raw, RowIssue) else self.check(raw)
            if isinstance(result, RowIssue):
                if result.member is None and isinstance(raw, RawRow) and raw.member is not None:
                    result = RowIssue(result.line, result.reason, raw.member)
                self.rejected += 1
                if len(self.issues) < MAX_ISSUES_KEPT:
                    self.issues.append(result)
                if self.on_issue is not None:
                    self.on_issue(result)
            else:
                yield result

    @property
    def label_counts(self) -> dict[str, int]:
        """Documents per label among the rows accepted so far (a preview's figures)."""
        return dict(sorted(self._counts.items()))

    def check(self, raw: RawRow) -> LabelledText | RowIssue:
        text = raw.text.strip()
        if not text:
            return RowIssue(raw.line, "empty text")
        size = utf8_size_over(text, self.limits.max_text_bytes)
        if size is not None:
            return RowIssue(
                raw.line, over_limit(f"text is {size:,} bytes", self.limits.max_text_bytes, "max_text_bytes")
            )
        labels = self._labels(raw)
        if isinstance(labels, str):
            return RowIssue(raw.line, labels)
        self._record(text, labels, raw.line)
        return LabelledText(text, labels, raw.line)

    def _labels(self, raw: RawRow) -> tuple[str, ...] | str:
        """The row's labels, or the reason they are refused; a label string seen before is
        answered from a cache (files repeat a few labels on every row)."""
        value = raw.labels
        if type(value) is str:
            known = self._label_cache.get(value)
            if known is not None:
                return known
            found = self._parse_labels(raw)
            if len(self._label_cache) < LABEL_CACHE:
                self._label_cache[value] = found
            return found
        return self._parse_labels(raw)

    def _parse_labels(self, raw: RawRow) -> tuple[str, ...] | str:
        value = raw.labels
        if value is None or (isinstance(value, str) and not value.strip()) or value == []:
            return "missing label" if self.require_labels else ()
        if isinstance(value, str):
            value = value.strip()
            if self.mode is Mode.MULTI_CLASS:
                if self.delimiter in value:
                    return (
                        f"label {excerpt(value)} contains the multi-label delimiter {self.delimiter!r} "
                        "in multi-class mode (use --mode multi-label, or another --delimiter)"
                    )
                parts = [value]
            else:
                parts = [part.strip() for part in value.split(self.delimiter)]
        else:
            if not all(isinstance(part, str) for part in value):
                return "labels must be strings"
            parts = list(dict.fromkeys(str(part).strip() for part in value))
            if self.mode is Mode.MULTI_CLASS and len(parts) > 1:
                return f"{len(parts)} labels given in multi-class mode (use --mode multi-label)"
        if any(not part for part in parts):
            return f"empty label in {excerpt(raw.labels)}"
        long = next((p for p in parts if len(p) > self.limits.max_label_chars), None)
        if long is not None:
            return over_limit(
                f"label of {len(long):,} characters", self.limits.max_label_chars, "max_label_chars"
            )
        return tuple(dict.fromkeys(parts))

    def _record(self, text: str, labels: tuple[str, ...], line: int) -> None:
        self._documents += 1
        counts = self._counts
        for label in labels:  # Counter.update's own overhead is most of its cost on one label
            counts[label] += 1
        encoded = text.encode("utf-8")
        text_hash = _blake2b(encoded, digest_size=16).digest()
        earlier = self._seen.get(text_hash)
        if earlier is None:
            self._seen[text_hash] = line
        else:
            self._duplicates += 1
            if len(self._duplicate_lines) < LISTED_DUPLICATES:
                self._duplicate_lines.append((line, earlier))
        # one update of the same bytes as four: label(s) \x1e text \x1d
        prefix = self._label_bytes.get(labels)
        if prefix is None:
            prefix = "\x1f".join(labels).encode("utf-8") + b"\x1e"
            if len(self._label_bytes) < LABEL_CACHE:
                self._label_bytes[labels] = prefix
        self._digest.update(b"".join((prefix, encoded, b"\x1d")))

    def finish(self) -> DatasetReport:
        """Check the dataset-wide rules and return the report, or raise listing every problem."""
        problems: list[str] = []
        if self._documents == 0 and not self.rejected:
            problems.append("no documents")
        limit, setting = (
            (self.limits.max_labels_multi_class, "max_labels_multi_class")
            if self.mode is Mode.MULTI_CLASS
            else (self.limits.max_labels_multi_label, "max_labels_multi_label")
        )
        if len(self._counts) > limit:
            problems.append(
                over_limit(f"{len(self._counts):,} distinct labels in {self.mode.value} mode", limit, setting)
            )
        spread = self._label_spread_problem()
        if spread is not None:
            problems.append(spread)
        if self.rejected > len(self.issues):
            problems.append(f"{self.rejected - len(self.issues):,} more rejected rows not listed")
        if self.issues or problems:
            raise DatasetInvalid(self.source, self.issues, problems)
        report = DatasetReport(
            documents=self._documents,
            label_counts=dict(sorted(self._counts.items())),
            duplicate_texts=self._duplicates,
            fingerprint=self._digest.hexdigest(),
        )
        header_row = self._header is not None and self._counts.get(self._header_label or "") == 1
        if header_row:
            report.warnings.append(
                f"line 1 looks like a header ({self._columns()}) and was read as a document labelled "
                f"{excerpt(self._header_label)}: a Comprehend CSV has no header row; remove it, or name "
                "the columns to read the file by its header (--text-column and --label-column)"
            )
        rare = sorted(label for label, n in self._counts.items() if n < self.limits.min_docs_per_label)
        if header_row:
            rare = [label for label in rare if label != self._header_label]
        if rare and self.warn_rare_labels:
            report.warnings.append(
                f"{len(rare)} label{'s have' if len(rare) > 1 else ' has'} fewer than "
                f"{self.limits.min_docs_per_label} documents (setting TAGLOOP_MIN_DOCS_PER_LABEL): "
                + label_list(rare, self._counts)
            )
        if self._duplicates:
            shown = ", ".join(f"line {line} (as line {first})" for line, first in self._duplicate_lines)
            more = self._duplicates - len(self._duplicate_lines)
            report.warnings.append(
                f"{self._duplicates:,} document{'s repeat' if self._duplicates > 1 else ' repeats'} an "
                f"earlier text exactly: {shown}" + (f" and {more:,} more" if more > 0 else "")
            )
        return report

    def _columns(self) -> str:
        assert self._header is not None
        return label_list(self._header)

    def _label_spread_problem(self) -> str | None:
        """Why the labels look like ids rather than classes (nearly one per document), or None."""
        documents, labels = self._documents, len(self._counts)
        if documents < SPREAD_MIN_DOCUMENTS or labels <= SPREAD_MAX_SHARE * documents:
            return None
        singletons = sum(1 for n in self._counts.values() if n == 1)
        if singletons < SPREAD_SINGLETONS * labels:
            return None
        found = (
            f"{labels:,} distinct labels for {documents:,} documents, {singletons:,} of them on one "
            "document only (ids, not classes a model can learn)"
        )
        if self.label_origin is not None:
            return (
                f"{self.label_origin} is not a label column: {found}; choose the column that holds "
                "the classes"
            )
        if self._header is not None:
            options = column_options(self._header)
            return (
                f"the first row looks like a header ({self._columns()}) and the first column is not a "
                f"label column: {found}. A Comprehend CSV has no header and its label first; to read "
                f"this file by its header, name its columns: {options or '--text-column and --label-column'}"
            )
        return f"the first column is not a label column: {found}; a Comprehend CSV has its label first"
