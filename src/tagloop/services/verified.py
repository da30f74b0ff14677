"""A classifier's verified documents (consolidated review answers and feedback), exported as
training data another tool, or a later ``tagloop train``, reads: Comprehend's CSV (no header,
``LABEL,text``; multi-label rows join their labels with the classifier's delimiter) or JSON
lines (``{"text", "labels", "origin"}``)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

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


def export_verified(database: Database, classifier: str, out: TextIO, format: str = "comprehend-csv") -> int:
    """Write the verified documents of ``classifier`` to ``out``, oldest first; returns how many."""
    if format not in FORMATS:
        raise InvalidRequest(f"unknown export format {format!r}: use {' or '.join(FORMATS)}")
    count = 0
    if format == "jsonl":
        for text, labels, origin, _ in _rows(database, classifier):
            out.write(orjson.dumps({"text": text, "labels": list(labels), "origin": origin}).decode() + "\n")
            count += 1
        return count
    writer = csv.writer(out, lineterminator="\n")
    for text, labels, _, delimiter in _rows(database, classifier):
        writer.writerow([delimiter.join(labels), text])
        count += 1
    return count
