"""The unlabelled pool: texts waiting for a person's labels, from which active learning picks
(``services/review_fill.py``).

A classifier's pool is fed two ways: files (:meth:`PoolService.add`, any input format the
training import reads; labels dropped, or kept as hints with ``keep_labels``) or documents
sent to ``/v1`` (:meth:`PoolService.add_documents`), and the logged predictions of endpoints
with a ``pool_rate`` (:meth:`PoolService.sample_predictions`, a part of the loop's ticker). A
text already pooled or verified for the classifier (``domain.loop.text_hash``: whitespace and
case do not count) is not added again, nor a text repeated within one file; each is reported
by line. Rows that cannot be read or fail the input limits are reported by line and skipped;
the rest are added in one transaction (a file where every row fails is refused whole).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from tagloop.domain.formats import FormatSpec, RawRow, read_rows
from tagloop.domain.limits import Limits, over_limit, utf8_size_over
from tagloop.domain.loop import text_hash
from tagloop.domain.names import check_name
from tagloop.domain.pool import check_rate, sampled
from tagloop.domain.records import Mode, Origin, Split
from tagloop.domain.validation import DatasetValidator
from tagloop.errors import DatasetInvalid, InvalidRequest, RowIssue
from tagloop.services.data_locations import DataLocations
from tagloop.services.datasets import open_source
from tagloop.storage.database import Database
from tagloop.storage.events import EventRepository
from tagloop.storage.pool import RATE, PoolRepository
from tagloop.storage.repositories import ClassifierRepository, EndpointRepository
from tagloop.storage.review import write_transaction
from tagloop.storage.tables import ClassifierRow, utcnow

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

BATCH = 2_000
"""Rows checked against the stored hashes and inserted together."""
LISTED = 1_000
"""Rejected rows and duplicates listed by line in a report (all are counted)."""
MAX_LIST = 1_000
MAX_DOCUMENTS = 1_000
"""Documents in one ``/v1`` request."""
MAX_HINTS = 100
"""Label hints on one document sent to ``/v1``."""
SAMPLE_BATCH = 10_000
"""Logged predictions one endpoint's sampling examines per tick (the rest on the next ticks)."""
SAMPLE_LAG_SECONDS = 10.0
"""Predictions younger than this wait for the next tick: the log writer commits them in
batches, and one committed late must not fall behind the watermark."""


@dataclass
class _Report:
    classifier: str
    source: str
    origin: str
    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    duplicate_rows: list[dict[str, Any]] = field(default_factory=list)
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)

    def duplicate(self, line: int, of: str) -> None:
        self.duplicates += 1
        if len(self.duplicate_rows) < LISTED:
            self.duplicate_rows.append({"line": line, "of": of})

    def reject(self, issue: RowIssue) -> None:
        self.rejected += 1
        if len(self.rejected_rows) < LISTED:
            self.rejected_rows.append({"line": issue.line, "reason": issue.reason})
            self.issues.append(issue)

    def as_dict(self) -> dict[str, Any]:
        return {
            "classifier": self.classifier,
            "source": self.source,
            "origin": self.origin,
            "added": self.added,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "duplicate_rows": self.duplicate_rows,
            "rejected_rows": self.rejected_rows,
        }


@dataclass(frozen=True)
class _Row:
    line: int
    text: str
    labels: tuple[str, ...]


class PoolService:
    """See the module's text. ``lag_seconds`` and ``clock`` are for tests."""

    def __init__(
        self,
        database: Database,
        limits: Limits,
        data_locations: DataLocations,
        clock: Clock = utcnow,
        lag_seconds: float = SAMPLE_LAG_SECONDS,
        sample_batch: int = SAMPLE_BATCH,
    ) -> None:
        self.database = database
        self.limits = limits
        self.data_locations = data_locations
        self.clock = clock
        self.lag = timedelta(seconds=lag_seconds)
        self.sample_batch = sample_batch

    # --- adding ----------------------------------------------------------------------------

    def add(
        self,
        classifier: str,
        source: str,
        spec: FormatSpec | None = None,
        keep_labels: bool = False,
        from_network: bool = False,
    ) -> dict[str, Any]:
        """Add the texts of the file at ``source`` (a path or fsspec URL; ``from_network``: it
        must lie in an allowed data location) to ``classifier``'s pool; the report says how
        many were added, and which lines were duplicates or rejected (and why)."""
        if from_network:
            source = self.data_locations.check(source, "source")
        spec = spec or FormatSpec.infer(source)
        check_name("classifier", classifier)

        def rows(mode: Mode, delimiter: str, report: _Report) -> Iterator[_Row]:
            validator = DatasetValidator(
                source, mode, self.limits, delimiter, require_labels=False, warn_rare_labels=False
            )
            with open_source(source) as stream:
                for raw in read_rows(stream, spec, self.limits.max_text_bytes, require_labels=False):
                    if isinstance(raw, RowIssue):
                        report.reject(raw)
                        continue
                    checked = validator.check(raw if keep_labels else RawRow(raw.line, raw.text, None))
                    if isinstance(checked, RowIssue):
                        report.reject(checked)
                    else:
                        yield _Row(checked.line, checked.text, checked.labels)

        return self._add(classifier, source, Origin.IMPORT, rows)

    def add_documents(
        self, classifier: str, documents: Sequence[Any], keep_labels: bool = False
    ) -> dict[str, Any]:
        """Add documents sent as JSON (``{"text": ..., "labels": [...]}`` each, or a string) to
        ``classifier``'s pool; lines in the report are positions in the list, from 1."""
        if not isinstance(documents, Sequence) or isinstance(documents, (str, bytes)):
            raise InvalidRequest("documents: expected a list")
        if not documents:
            raise InvalidRequest("documents: the list is empty")
        if len(documents) > MAX_DOCUMENTS:
            raise InvalidRequest(f"documents: {len(documents):,} given, at most {MAX_DOCUMENTS:,} a request")
        check_name("classifier", classifier)

        def rows(mode: Mode, delimiter: str, report: _Report) -> Iterator[_Row]:
            for line, document in enumerate(documents, start=1):
                checked = self._document(line, document, mode, keep_labels)
                if isinstance(checked, RowIssue):
                    report.reject(checked)
                else:
                    yield checked

        return self._add(classifier, "request", Origin.IMPORT, rows)

    def _document(self, line: int, document: Any, mode: Mode, keep_labels: bool) -> _Row | RowIssue:
        if isinstance(document, str):
            document = {"text": document}
        if not isinstance(document, dict):
            return RowIssue(line, "expected an object with a text")
        unknown = sorted(str(key)[:40] for key in document if key not in ("text", "labels"))
        if unknown:
            return RowIssue(line, f"unknown field {unknown[0]!r} (known: text, labels)")
        text = document.get("text")
        if not isinstance(text, str):
            return RowIssue(line, "text: expected a string")
        text = text.strip()
        if not text:
            return RowIssue(line, "empty text")
        if "\x00" in text:
            return RowIssue(line, "contains a NUL character (not allowed in text)")
        size = utf8_size_over(text, self.limits.max_text_bytes)
        if size is not None:
            return RowIssue(
                line, over_limit(f"text is {size:,} bytes", self.limits.max_text_bytes, "max_text_bytes")
            )
        labels = document.get("labels", [])
        if labels is None:
            labels = []
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            return RowIssue(line, "labels: expected a list of strings")
        if len(labels) > MAX_HINTS:
            return RowIssue(line, f"labels: {len(labels):,} given, at most {MAX_HINTS}")
        hints = tuple(dict.fromkeys(label.strip() for label in labels)) if keep_labels else ()
        if any(not label or "\x00" in label for label in hints):
            return RowIssue(line, "labels: an empty label or one with a NUL character")
        if any(len(label) > self.limits.max_label_chars for label in hints):
            return RowIssue(
                line,
                over_limit("a label is too long", self.limits.max_label_chars, "max_label_chars"),
            )
        if mode is Mode.MULTI_CLASS and len(hints) > 1:
            return RowIssue(line, f"{len(hints)} labels given in multi-class mode")
        return _Row(line, text, hints)

    def _add(
        self,
        classifier: str,
        source: str,
        origin: Origin,
        rows: Callable[[Mode, str, _Report], Iterator[_Row]],
    ) -> dict[str, Any]:
        """Read, check and hash every row first (into a private temporary file, so memory stays
        constant), then insert the new ones in one transaction: the pool lock (on SQLite the
        write lock) is held for the database work only, not while a remote file downloads."""
        report = _Report(classifier, source, origin.value)
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            mode, delimiter = Mode(row.mode), row.label_delimiter
        seen: dict[str, int] = {}  # hash -> first line in this source
        with tempfile.TemporaryFile() as spool:  # 0600, and unlinked at once on POSIX
            for item in rows(mode, delimiter, report):
                hash_ = text_hash(item.text)
                if hash_ in seen:
                    report.duplicate(item.line, f"line {seen[hash_]}")
                    continue
                seen[hash_] = item.line
                spool.write(orjson.dumps([item.line, item.text, list(item.labels), hash_]) + b"\n")
            seen.clear()
            spool.seek(0)
            with write_transaction(self.database) as session:
                row = ClassifierRepository(session).get(classifier)
                pool = PoolRepository(session)
                pool.lock(row.id)
                batch: list[list[Any]] = []
                for line in spool:
                    batch.append(orjson.loads(line))
                    if len(batch) >= BATCH:
                        self._insert(pool, row.id, batch, report, origin)
                        batch = []
                self._insert(pool, row.id, batch, report, origin)
                if report.rejected and not report.added and not report.duplicates:
                    raise DatasetInvalid(source, report.issues)
                if not (report.added or report.duplicates or report.rejected):
                    raise InvalidRequest(f"{source}: no documents")
                counts = pool.counts(row.id)
        report.duplicate_rows.sort(key=lambda found: found["line"])
        return report.as_dict() | {"pool": counts}

    @staticmethod
    def _insert(
        pool: PoolRepository, classifier_id: int, batch: Sequence[list[Any]], report: _Report, origin: Origin
    ) -> None:
        """Insert the rows of ``batch`` (line, text, labels, hash) the classifier has not pooled
        or verified; report the others."""
        if not batch:
            return
        known = pool.known(classifier_id, [hash_ for _, _, _, hash_ in batch])
        rows: list[dict[str, Any]] = []
        for line, text, labels, hash_ in batch:
            if hash_ in known:
                report.duplicate(line, known[hash_])
            else:
                rows.append(_document_row(classifier_id, text, labels, origin, line, hash_))
        pool.add_many(rows)
        report.added += len(rows)

    # --- reading and clearing ------------------------------------------------------------------

    def count(self, classifier: str) -> dict[str, Any]:
        """Pool documents of ``classifier``: waiting, picked (in a review task), by origin."""
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            return {"classifier": classifier} | PoolRepository(session).counts(row.id)

    def list(
        self, classifier: str, picked: bool | None = None, limit: int = 100, after: int | None = None
    ) -> dict[str, Any]:
        """Pool documents oldest first, a page at a time (``next_after`` pages on): id, text,
        label hints, origin, and the review task (with its status) of a picked one."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidRequest(f"limit: 1 to {MAX_LIST:,}, not {limit!r}")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            raise InvalidRequest(f"after: expected a document id, not {after!r}")
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            found = PoolRepository(session).page(row.id, picked, limit, after)
            documents = [
                {
                    "id": doc.id,
                    "text": doc.text,
                    "labels": list(doc.labels or []),
                    "origin": doc.origin,
                    "task_id": doc.pool_task_id,
                    "task_status": status,
                    "created_at": doc.created_at.isoformat(),
                }
                for doc, status in found
            ]
        next_after = documents[-1]["id"] if len(documents) == limit else None
        return {"classifier": classifier, "documents": documents, "next_after": next_after}

    def clear(self, classifier: str) -> dict[str, Any]:
        """Delete the documents waiting in ``classifier``'s pool (picked ones stay with their
        review tasks)."""
        with write_transaction(self.database) as session:
            row = ClassifierRepository(session).get(classifier)
            pool = PoolRepository(session)
            pool.lock(row.id)
            removed = pool.clear(row.id)
            counts = pool.counts(row.id)
        return {"classifier": classifier, "removed": removed, "pool": counts}

    # --- logged predictions ---------------------------------------------------------------------

    def set_rate(self, endpoint: str, rate: float) -> dict[str, Any]:
        """Feed this share (0 to 1; 0: off) of ``endpoint``'s logged predictions (those that kept
        their text) to its classifier's pool, from now on. Records an event ``pool.rate``."""
        rate = check_rate(rate)
        check_name("endpoint", endpoint)
        with write_transaction(self.database) as session:
            row = EndpointRepository(session).get(endpoint)
            pool = PoolRepository(session)
            previous = float(row.pool_rate or 0.0)
            row.pool_rate = rate
            row.updated_at = utcnow()
            mark = pool.watermark(row) if previous > 0 else None
            through, through_id = mark if mark is not None else (self.clock(), "")
            pool.move_watermark(row, through, through_id)
            EventRepository(session).add(
                RATE,
                {
                    "rate": rate,
                    "previous": previous,
                    "through": through.isoformat(),
                    "through_id": through_id,
                },
                classifier_id=row.classifier_id,
                endpoint=endpoint,
            )
            classifier = session.get_one(ClassifierRow, row.classifier_id).name
        return {"endpoint": endpoint, "classifier": classifier, "pool_rate": rate, "previous": previous}

    def sample_predictions(self) -> dict[str, Any]:
        """One tick of feeding pools from logged predictions (the loop ticker calls it): for
        each endpoint with a ``pool_rate``, examine its predictions logged since the last tick
        (at most ``sample_batch``; those younger than the lag wait) and pool the sampled share
        (``domain.pool.sampled``: by prediction id, the same answer in every process) whose text
        was kept and is new to the classifier. Safe when several processes tick at once: each
        endpoint's pass holds its classifier's pool lock, moves the watermark it read, and a
        prediction sampled twice is a duplicate text anyway. Returns figures per endpoint."""
        with self.database.reading() as session:
            feeding = [
                (row.name, row.classifier_id, float(row.pool_rate))
                for row in PoolRepository(session).feeding_endpoints()
            ]
        figures: dict[str, Any] = {}
        for name, classifier_id, rate in feeding:
            try:
                figures[name] = self._sample(name, classifier_id, rate)
            except Exception:  # one endpoint's trouble must not stop the others
                log.exception("pool: sampling the predictions of endpoint %s failed", name)
        return {"endpoints": figures}

    def tick(self) -> None:
        """The loop ticker's part: :meth:`sample_predictions`, its figures logged."""
        for name, figures in self.sample_predictions()["endpoints"].items():
            if figures["added"]:
                log.info("pool: %d prediction(s) of endpoint %s joined the pool", figures["added"], name)

    def _sample(self, endpoint: str, classifier_id: int, rate: float) -> dict[str, int]:
        now = self.clock()
        with write_transaction(self.database) as session:
            pool = PoolRepository(session)
            pool.lock(classifier_id)
            row = EndpointRepository(session).find(endpoint)
            if row is None or row.pool_rate <= 0:  # deleted or switched off since it was listed
                return {"examined": 0, "added": 0, "duplicates": 0}
            mark = pool.watermark(row)
            if mark is None:  # a rate stored without set_rate (by hand): count from now
                pool.move_watermark(row, now, "")
                return {"examined": 0, "added": 0, "duplicates": 0}
            found = pool.predictions_after(endpoint, classifier_id, mark, now - self.lag, self.sample_batch)
            chosen = [(pid, text) for pid, text, _ in found if text and text.strip() and sampled(pid, rate)]
            items = [(pid, text.strip()) for pid, text in chosen]
            items = [
                (pid, text) for pid, text in items if utf8_size_over(text, self.limits.max_text_bytes) is None
            ]
            hashes = [text_hash(text) for _, text in items]
            known = pool.known(classifier_id, hashes)
            rows: list[dict[str, Any]] = []
            duplicates = 0
            seen: set[str] = set()
            for (_, text), hash_ in zip(items, hashes, strict=True):
                if hash_ in known or hash_ in seen:
                    duplicates += 1
                    continue
                seen.add(hash_)
                rows.append(_document_row(classifier_id, text, [], Origin.PREDICTION, None, hash_))
            pool.add_many(rows)
            if found:
                last_id, _, last_at = found[-1]
                pool.move_watermark(row, last_at, last_id)
        return {"examined": len(found), "added": len(rows), "duplicates": duplicates}


def _document_row(
    classifier_id: int, text: str, labels: Iterable[str], origin: Origin, line: int | None, hash_: str
) -> dict[str, Any]:
    return {
        "classifier_id": classifier_id,
        "dataset_id": None,
        "text": text,
        "labels": list(labels),
        "origin": origin.value,
        "split": Split.POOL.value,
        "line": line,
        "text_hash": hash_,
        "pool_task_id": None,
        "created_at": utcnow(),
    }
