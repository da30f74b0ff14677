"""A classifier's verified documents (consolidated review answers and feedback), exported as
training data another tool, or a later ``tagloop train``, reads: Comprehend's CSV (no header,
``LABEL,text``; multi-label rows join their labels with the classifier's delimiter) or JSON
lines (``{"text", "labels", "origin"}``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

import orjson

from tagloop.errors import InvalidRequest
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository, DocumentRepository

FORMATS = ("comprehend-csv", "jsonl")


def _rows(database: Database, classifier: str) -> Iterator[tuple[str, tuple[str, ...], str, str]]:
    with database.reading() as session:
        row = ClassifierRepository(session).get(classifier)
        delimiter = row.label_delimiter
        for text, labels, origin in DocumentRepository(session).verified_rows(row.id):
            yield text, labels, origin, delimiter


def verified_lines(database: Database, classifier: str, format: str = "comprehend-csv") -> Iterator[str]:
    """The verified documents of ``classifier`` in ``format``, one line each, oldest first
    (the format is checked now; the classifier when the first line is asked for)."""
    if format not in FORMATS:
        raise InvalidRequest(f"unknown export format {format!r}: use {' or '.join(FORMATS)}")
    return _jsonl(database, classifier) if format == "jsonl" else _csv(database, classifier)


def _jsonl(database: Database, classifier: str) -> Iterator[str]:
    for text, labels, origin, _ in _rows(database, classifier):
        yield orjson.dumps({"text": text, "labels": list(labels), "origin": origin}).decode() + "\n"


def _csv(database: Database, classifier: str) -> Iterator[str]:
    line = io.StringIO()
    writer = csv.writer(line, lineterminator="\n")
    for text, labels, _, delimiter in _rows(database, classifier):
        writer.writerow([delimiter.join(labels), text])
        yield line.getvalue()
        line.seek(0)
        line.truncate()


def export_verified(database: Database, classifier: str, out: IO[str], format: str = "comprehend-csv") -> int:
    """Write the verified documents of ``classifier`` to ``out``, oldest first; returns how many."""
    count = 0
    for line in verified_lines(database, classifier, format):
        out.write(line)
        count += 1
    return count
