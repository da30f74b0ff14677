"""Importing labelled files into a classifier's documents, atomically and in constant memory."""

from __future__ import annotations

import gzip
import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import fsspec
from fsspec.utils import infer_compression
from sqlalchemy.orm import Session

from tagloop.domain.formats import COMPREHEND_CSV, FormatSpec, RawRow, read_rows
from tagloop.domain.limits import Limits
from tagloop.domain.records import LabelledText, Mode, Origin, Split
from tagloop.domain.validation import DatasetReport, DatasetValidator
from tagloop.errors import DatasetInvalid, InvalidRequest, RowIssue
from tagloop.storage.repositories import DatasetRepository, DocumentRepository
from tagloop.storage.tables import ClassifierRow, DatasetRow

INSERT_BATCH = 2_000


# what the decompressors raise on a truncated or corrupt stream (bz2 raises a bare OSError)
DAMAGED_STREAM_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, zipfile.BadZipFile)


def damaged_compressed_file(source: str, exc: BaseException) -> str | None:
    """The reason to give when ``exc``, raised while reading ``source``, says that the file is
    compressed and truncated or damaged; None when it says something else."""
    if infer_compression(source) is None:
        return None
    bare_os_error = type(exc) is OSError and exc.errno is None  # bz2: "Invalid data stream"
    if not (isinstance(exc, DAMAGED_STREAM_ERRORS) or bare_os_error):
        return None
    detail = str(exc).strip() or type(exc).__name__
    return f"compressed file is truncated or damaged ({detail})"


@contextmanager
def open_source(source: str, compression: str | None = "infer") -> Iterator[BinaryIO]:
    """Open a local path or fsspec URL for binary reading; ``.gz``/``.bz2``/``.xz`` are
    decompressed (unless ``compression`` is None: an archive reader's own), and a truncated or
    damaged one is refused, naming the file."""
    try:
        with fsspec.open(source, "rb", compression=compression) as handle:
            yield handle
    except FileNotFoundError as exc:
        raise InvalidRequest(f"cannot read {source}: no such file") from exc
    except IsADirectoryError as exc:
        raise InvalidRequest(f"cannot read {source}: it is a folder, not a file") from exc
    except PermissionError as exc:
        raise InvalidRequest(f"cannot read {source}: permission denied") from exc
    except (*DAMAGED_STREAM_ERRORS, OSError) as exc:
        reason = damaged_compressed_file(source, exc)
        if reason is None:
            raise
        raise DatasetInvalid(source, [], [reason]) from exc


@dataclass(frozen=True)
class ReadOptions:
    """How to read and check one input file."""

    spec: FormatSpec
    mode: Mode
    delimiter: str
    limits: Limits
    require_labels: bool = True
    warn_rare_labels: bool = True  # a training-data rule: evaluation sets warn about other things
    on_issue: Callable[[RowIssue], None] | None = None  # hears every rejected row (e.g. for a file)
    # an import profile's reader (services/profiles.py) in place of the format's: source -> rows
    rows: Callable[[str], Iterator[RawRow | RowIssue]] | None = None
    format_name: str | None = None  # what the dataset records as its format (default: spec.format)
    label_origin: str | None = None  # where the labels come from, for the validator's messages


class DatasetReader:
    """Streams the valid rows of one input file; :meth:`finish` then reports or refuses it.

    Callers consume the rows fully (inside a transaction, if they write) and call
    :meth:`finish`, which raises DatasetInvalid listing every rejected row, so a bad row
    anywhere rolls everything back.
    """

    def __init__(self, source: str, options: ReadOptions) -> None:
        self.source = source
        self.options = options
        spec = options.spec
        label_origin = options.label_origin
        if label_origin is None and options.rows is None and spec.format != COMPREHEND_CSV:
            label_origin = f"--label-column {spec.label_column}" if spec.label_column else "the label field"
        self.validator = DatasetValidator(
            source,
            options.mode,
            options.limits,
            options.delimiter,
            options.require_labels,
            warn_rare_labels=options.warn_rare_labels,
            label_origin=label_origin,
            on_issue=options.on_issue,
        )

    def __iter__(self) -> Iterator[LabelledText]:
        if self.options.rows is not None:
            yield from self.validator.rows(self.options.rows(self.source))
            return
        with open_source(self.source) as stream:
            options = self.options
            raw = read_rows(stream, options.spec, options.limits.max_text_bytes, options.require_labels)
            yield from self.validator.rows(raw)

    @property
    def rejected(self) -> int:
        return self.validator.rejected

    def finish(self) -> DatasetReport:
        return self.validator.finish()


def import_dataset(
    session: Session,
    classifier: ClassifierRow,
    source: str,
    options: ReadOptions,
    split: Split,
) -> tuple[DatasetRow, DatasetReport]:
    """Insert every document of ``source`` into ``session`` (the caller's transaction).

    Raises DatasetInvalid, listing every rejected row, after reading the whole file; the
    caller's transaction then rolls back, so nothing of the file is kept.
    """
    datasets, documents = DatasetRepository(session), DocumentRepository(session)
    dataset = datasets.add(classifier.id, source, options.format_name or options.spec.format)
    reader = DatasetReader(source, options)
    batch: list[dict[str, object]] = []
    for row in reader:
        if reader.rejected:
            continue  # the file will be refused: stop writing, keep reading for errors
        batch.append(
            {
                "classifier_id": classifier.id,
                "dataset_id": dataset.id,
                "text": row.text,
                "labels": list(row.labels),
                "origin": Origin.IMPORT.value,
                "split": split.value,
                "line": row.line,
            }
        )
        if len(batch) >= INSERT_BATCH:
            documents.add_many(batch)
            batch.clear()
    report = reader.finish()
    documents.add_many(batch)
    dataset.documents = report.documents
    dataset.label_counts = report.label_counts
    dataset.fingerprint = report.fingerprint
    dataset.warnings = report.warnings
    return dataset, report
