"""Import profiles: saved per classifier (:class:`ProfileService`), and reading a source through
one (:class:`ProfileReader`) into the same ``RawRow`` stream ``domain/formats.read_rows``
yields, so ``DatasetValidator`` checks every row as it checks a plain file's.

A source is a file (CSV, JSONL, text, a SQLite database; ``.gz``/``.bz2`` decompressed) or an
archive of them (``services/archives.py``: bombs and escaping paths refused), read member by
member with the label from the member's name or folder when the profile says so; or, for a
profile with a ``database_url``, that database (``services/sql_sources.py``: read-only, row
limit, timeout). Errors name the member and line.

What comes over the network is checked: a source file against the data locations
(``TAGLOOP_ALLOWED_DATA_URLS``), a database URL against ``TAGLOOP_ALLOWED_DATABASE_URLS`` (a
SQLite URL's file against the data locations). A database password is kept sealed
(``services/secrets.SecretBox``) and never shown.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy.engine import make_url

from tagloop.domain.archives import ArchiveLimits
from tagloop.domain.formats import COMPREHEND_CSV, CSV, JSONL, FormatSpec, RawRow, csv_records, read_rows
from tagloop.domain.limits import Limits
from tagloop.domain.names import check_name
from tagloop.domain.profiles import DOCUMENT, LINES, SQLITE, ProfileSpec
from tagloop.domain.records import DEFAULT_LABEL_DELIMITER, Mode
from tagloop.domain.validation import DatasetValidator, excerpt
from tagloop.errors import AlreadyExists, DatasetInvalid, InvalidRequest, LocationNotAllowed, RowIssue
from tagloop.services import archives, sql_sources
from tagloop.services.catalog import get_or_create_classifier
from tagloop.services.data_locations import DataLocations
from tagloop.services.secrets import SecretBox
from tagloop.settings import Settings
from tagloop.storage.database import Database, normalize_url
from tagloop.storage.profiles import ProfileRepository
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import ImportProfileRow

CHUNK = 1 << 20
_SURROGATE = re.compile("[\udc80-\udcff]")
SEALED = "database_url_sealed"  # the stored spec's key for the sealed URL (with its password)
SAMPLE_CHARS = 200
MAX_PREVIEW_ROWS = 100
MAX_PREVIEW_SCAN = 100_000
PREVIEW_ISSUES = 50
DATABASE_SETTING = "TAGLOOP_ALLOWED_DATABASE_URLS"


@dataclass(frozen=True)
class ImportLimits:
    """The limits a profile reads under (settings TAGLOOP_ARCHIVE_*, TAGLOOP_IMPORT_*)."""

    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    max_rows: int = 10_000_000
    query_timeout: float = 300.0
    max_text_bytes: int = Limits.max_text_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ImportLimits:
        return cls(
            ArchiveLimits(
                settings.archive_max_ratio, settings.archive_max_members, settings.archive_max_total_bytes
            ),
            settings.import_max_rows,
            settings.import_query_timeout_seconds,
            settings.max_text_bytes,
        )


class ProfileReader:
    """Reads sources through one profile; counts what its filters dropped and the members read."""

    def __init__(self, name: str, spec: ProfileSpec, limits: ImportLimits) -> None:
        self.name = name
        self.spec = spec
        self.limits = limits
        self._filtered = 0  # rows dropped by filters outside queries (those are in members' tallies)
        self.members: list[dict[str, Any]] = []

    @property
    def filtered(self) -> int:
        """Rows the profile's filters dropped so far."""
        return self._filtered + sum(entry.get("filtered", 0) for entry in self.members)

    format_name = "profile"  # a dataset's format column (the version's parameters name the profile)

    @property
    def label_origin(self) -> str | None:
        column = self.spec.label_column
        return f"label_column {column} of profile {self.name}" if column else None

    @property
    def shown_spec(self) -> dict[str, Any]:
        """The spec as it may be shown and recorded: a database password hidden."""
        data = self.spec.as_dict()
        if self.spec.database_url is not None:
            data["database_url"] = sql_sources.shown_url(self.spec.database_url)
        return data

    @property
    def database_source(self) -> str | None:
        """The database the profile reads (password hidden), or None: it reads given files."""
        url = self.spec.database_url
        return sql_sources.shown_url(url) if url is not None else None

    def rows(self, source: str) -> Iterator[RawRow | RowIssue]:
        """Every row of ``source`` (ignored for a database profile) as RawRow or RowIssue."""
        spec = self.spec
        if spec.database_url is not None:
            assert spec.query is not None
            tally = self._tally(sql_sources.shown_url(spec.database_url))
            yield from sql_sources.database_rows(
                spec.database_url,
                spec.query,
                lambda columns: spec.mapper(columns, None, "query result"),
                self.limits.max_rows,
                self.limits.query_timeout,
                tally,
            )
            return
        found = 0
        with archives.members(source, self.limits.archive, spec.wants_member) as members:
            for member in members:
                found += 1
                fmt = spec.format_of(member.name)
                with archives.reading(source, member.name):
                    rows = self._member_rows(member)  # a query's rows are counted by their tally
                    yield from rows if fmt == SQLITE else self._counted(rows, member.name)
        if not found:
            patterns = ", ".join(spec.members)
            raise DatasetInvalid(source, [], [f"no member matches the profile's members ({patterns})"])

    def _tally(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "rows": 0, "filtered": 0}
        self.members.append(entry)
        return entry

    def _counted(self, rows: Iterator[RawRow | RowIssue], name: str) -> Iterator[RawRow | RowIssue]:
        entry: dict[str, Any] = {"name": name, "rows": 0}
        self.members.append(entry)
        for count, row in enumerate(rows, start=1):
            entry["rows"] = count
            yield row

    def _mapper_for(
        self, label: str | None, member: str | None
    ) -> Callable[[Sequence[str]], Callable[[int, Sequence[object]], RawRow | RowIssue | None]]:
        def mapper_for(columns: Sequence[str]) -> Callable[[int, Sequence[object]], RawRow | RowIssue | None]:
            inner = self.spec.mapper(columns, label, member)

            def mapped(line: int, values: Sequence[object]) -> RawRow | RowIssue | None:
                row = inner(line, values)
                if row is None:
                    self._filtered += 1
                return row

            return mapped

        return mapper_for

    def _member_rows(self, member: archives.Member) -> Iterator[RawRow | RowIssue]:
        spec = self.spec
        fmt = spec.format_of(member.name)
        label = spec.member_label(member.name)
        where = member.name if member.in_archive else None
        if fmt == SQLITE:
            yield from self._sqlite_rows(member)
        elif fmt == COMPREHEND_CSV:
            for row in read_rows(member.stream, FormatSpec(), self.limits.max_text_bytes):
                yield _at(row, where)
        elif fmt == CSV:
            yield from self._csv_rows(member.stream, label, where)
        elif fmt == JSONL:
            yield from self._jsonl_rows(member.stream, label, where)
        elif fmt == LINES:
            yield from self._lines_rows(member.stream, label, where)
        elif fmt == DOCUMENT:
            yield from self._document_rows(member.stream, label, where)

    def _sqlite_rows(self, member: archives.Member) -> Iterator[RawRow | RowIssue]:
        """A SQLite file given alone: read in place when it is a local plain file, else copied."""
        if member.local_path is not None and os.path.isfile(member.local_path):
            yield from self._query_rows(member.local_path, member, False)
            return
        folder = tempfile.mkdtemp(prefix="tagloop-import-")
        try:
            path = os.path.join(folder, "member.sqlite3")  # never the member's own name
            with open(path, "wb") as copy:
                shutil.copyfileobj(member.stream, copy, CHUNK)
            yield from self._query_rows(path, member, True)
        finally:  # also when the reader is left half-way (a preview) or fails
            shutil.rmtree(folder, ignore_errors=True)

    def _query_rows(self, path: str, member: archives.Member, copy: bool) -> Iterator[RawRow | RowIssue]:
        spec = self.spec
        assert spec.query is not None
        label, where = spec.member_label(member.name), f"{member.name} (query result)"
        limits = self.limits
        yield from sql_sources.sqlite_rows(
            path,
            spec.query,
            lambda columns: spec.mapper(columns, label, where),
            limits.max_rows,
            limits.query_timeout,
            member.name,
            copy,
            self._tally(member.name),
        )

    def _text(self, stream: Any) -> io.TextIOWrapper:
        csv.field_size_limit(self.limits.max_text_bytes + 1)
        return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def _csv_rows(self, stream: Any, label: str | None, where: str | None) -> Iterator[RawRow | RowIssue]:
        mapper = None
        for line, fields in csv_records(self._text(stream)):
            if isinstance(fields, RowIssue):
                if mapper is None:
                    raise InvalidRequest(f"{where or 'file'}: cannot read the header row: {fields.reason}")
                yield RowIssue(fields.line, fields.reason, where)
                continue
            if mapper is None:
                header = [name.strip() for name in fields]
                mapper = self._mapper_for(label, where)(header)
                width = len(header)
                continue
            if len(fields) != width:
                yield RowIssue(line, f"expected {width} columns as in the header, found {len(fields)}", where)
                continue
            row = mapper(line, fields)
            if row is not None:
                yield row

    def _jsonl_rows(self, stream: Any, label: str | None, where: str | None) -> Iterator[RawRow | RowIssue]:
        spec = self.spec
        columns = list(spec.text_columns or ("text",))
        label_keys: tuple[str, ...] = ()
        if label is None:
            label_keys = (spec.label_column,) if spec.label_column else ("labels", "label")
        filter_columns = [f.column for f in spec.filters]
        names = [*columns, *filter_columns, *([spec.label_column or "labels"] if label_keys else [])]
        profile_spec = spec
        if label_keys and spec.label_column is None:
            profile_spec = dataclasses.replace(spec, label_column="labels")
        mapper = profile_spec.mapper(names, label, where)
        label_at = len(names) - 1
        decoder = codecs.getincrementaldecoder("utf-8")
        for number, raw in enumerate(stream, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = decoder().decode(raw, final=True)
            except UnicodeDecodeError:
                yield RowIssue(number, "invalid UTF-8 (the file must be UTF-8 encoded)", where)
                continue
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RowIssue(number, f"invalid JSON: {exc.msg} at column {exc.colno}", where)
                continue
            if not isinstance(record, dict):
                yield RowIssue(number, "expected a JSON object per line", where)
                continue
            missing = [key for key in columns if key not in record]
            if len(missing) == len(columns):  # one text key of several may be absent, as NULL
                yield RowIssue(number, f"missing key {', '.join(map(repr, missing))}", where)
                continue
            values: list[object] = [record.get(key) for key in names]
            if label_keys:
                values[label_at] = next((record[k] for k in label_keys if k in record), None)
                found = values[label_at]
                if found is not None and not isinstance(found, str | list):
                    yield RowIssue(number, "labels must be a string or a list of strings", where)
                    continue
            row = mapper(number, values)
            if row is None:
                self._filtered += 1
            else:
                yield row

    def _lines_rows(self, stream: Any, label: str | None, where: str | None) -> Iterator[RawRow | RowIssue]:
        for number, line in enumerate(self._text(stream), start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            if _SURROGATE.search(text):
                yield RowIssue(number, "invalid UTF-8 (the file must be UTF-8 encoded)", where)
                continue
            yield RawRow(number, text, label, None, where)

    def _document_rows(
        self, stream: Any, label: str | None, where: str | None
    ) -> Iterator[RawRow | RowIssue]:
        limit = self.limits.max_text_bytes
        data = stream.read(limit + 1)
        if len(data) > limit:
            yield RowIssue(1, f"document over {limit:,} bytes (setting TAGLOOP_MAX_TEXT_BYTES)", where)
            return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            yield RowIssue(1, "invalid UTF-8 (the file must be UTF-8 encoded)", where)
            return
        yield RawRow(1, text, label, None, where)


def _at(row: RawRow | RowIssue, where: str | None) -> RawRow | RowIssue:
    if where is None:
        return row
    if isinstance(row, RowIssue):
        return RowIssue(row.line, row.reason, where)
    return RawRow(row.line, row.text, row.labels, row.fields, where)


class ProfileService:
    """Import profiles per classifier: create or replace, list, show, delete, try."""

    def __init__(
        self, database: Database, settings: Settings, data_locations: DataLocations, box: SecretBox
    ) -> None:
        self.database = database
        self.settings = settings
        self.data_locations = data_locations
        self.box = box
        self.limits = ImportLimits.from_settings(settings)

    # ---- CRUD -----------------------------------------------------------------------
    def put(
        self,
        classifier: str,
        name: str,
        spec: ProfileSpec | dict[str, Any],
        *,
        replace: bool = True,
        from_network: bool = False,
        mode: Mode = Mode.MULTI_CLASS,
    ) -> dict[str, Any]:
        """Save the profile (a new classifier is created with ``mode``); without ``replace``,
        an existing profile of that name is refused."""
        check_name("profile", name)
        if not isinstance(spec, ProfileSpec):
            spec = ProfileSpec.from_dict(spec)
        if spec.database_url is not None:
            sql_sources.parse_database_url(spec.database_url)
            if from_network:
                self.check_database(spec.database_url)
        with self.database.transaction() as session:
            row_classifier = ClassifierRepository(session).find(check_name("classifier", classifier))
            if row_classifier is None:
                row_classifier = get_or_create_classifier(session, classifier, mode, DEFAULT_LABEL_DELIMITER)
            profiles = ProfileRepository(session)
            if not replace and profiles.find(row_classifier.id, name) is not None:
                raise AlreadyExists(f"classifier {classifier!r} has an import profile {name!r} already")
            row, created = profiles.put(row_classifier.id, name, self._stored(spec))
            return self._view(classifier, row) | {"created": created}

    def list(self, classifier: str) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            return [self._view(classifier, profile) for profile in ProfileRepository(session).list(row.id)]

    def show(self, classifier: str, name: str) -> dict[str, Any]:
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            return self._view(classifier, ProfileRepository(session).get(row.id, classifier, name))

    def get(self, classifier: str, name: str) -> ProfileSpec:
        """The profile's spec, its database password unsealed (for reading, never for showing)."""
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            return self._spec(ProfileRepository(session).get(row.id, classifier, name))

    def spec_in(self, session: Any, classifier_id: int, classifier: str, name: str) -> ProfileSpec:
        """:meth:`get` inside the caller's transaction (training reads its profile there)."""
        return self._spec(ProfileRepository(session).get(classifier_id, classifier, name))

    def delete(self, classifier: str, name: str) -> dict[str, Any]:
        with self.database.transaction() as session:
            row = ClassifierRepository(session).get(classifier)
            profile = ProfileRepository(session).get(row.id, classifier, name)
            ProfileRepository(session).delete(profile)
            return {"classifier": classifier, "name": name, "deleted": True}

    def reader(self, name: str, spec: ProfileSpec) -> ProfileReader:
        return ProfileReader(name, spec, self.limits)

    # ---- try ------------------------------------------------------------------------
    def preview(
        self,
        classifier: str,
        name: str,
        source: str | None,
        rows: int = 10,
        scan: int = 10_000,
        from_network: bool = False,
    ) -> dict[str, Any]:
        """Read up to ``scan`` rows of ``source`` through the profile and report: the first
        ``rows`` kept rows, counts (``rows_read``: rows past the filters, of which ``kept`` and
        ``rejected``; ``filtered``: dropped by filters), labels, issues."""
        rows = max(0, min(rows, MAX_PREVIEW_ROWS))
        scan = max(1, min(scan, MAX_PREVIEW_SCAN))
        with self.database.reading() as session:
            row_classifier = ClassifierRepository(session).get(classifier)
            spec = self._spec(ProfileRepository(session).get(row_classifier.id, classifier, name))
            mode, delimiter = Mode.parse(row_classifier.mode), row_classifier.label_delimiter
        reader = self.reader(name, spec)
        if spec.database_url is not None:
            if from_network:
                self.check_database(spec.database_url)
            source = reader.database_source
        elif source is None:
            raise InvalidRequest(f"profile {name!r} reads files: give the source file to try it on")
        elif from_network:
            source = self.data_locations.check(source, "source")
        assert source is not None
        limits = Limits.from_settings(self.settings)
        validator = DatasetValidator(
            source, mode, limits, spec.label_delimiter or delimiter, label_origin=reader.label_origin
        )
        raw = islice(reader.rows(source), scan)
        sample: list[dict[str, Any]] = []
        read = 0

        def counted() -> Iterator[RawRow | RowIssue]:
            nonlocal read
            for item in raw:
                read += 1
                yield item

        for document in validator.rows(counted()):
            if len(sample) < rows:
                sample.append(
                    {"line": document.line, "text": _cut(document.text), "labels": list(document.labels)}
                )
        complete = read < scan
        problems: list[str] = []
        label_counts: dict[str, int] = {}
        warnings: list[str] = []
        try:
            report = validator.finish()
            label_counts, warnings = report.label_counts, report.warnings
        except DatasetInvalid as exc:
            problems = exc.problems
            label_counts = validator.label_counts
        return {
            "classifier": classifier,
            "profile": name,
            "source": source if spec.database_url is None else reader.database_source,
            "complete": complete,
            "members": reader.members,
            "rows_read": read,
            "filtered": reader.filtered,
            "kept": read - validator.rejected,
            "rejected": validator.rejected,
            "label_counts": label_counts,
            "sample": sample,
            "issues": [
                {"member": issue.member, "line": issue.line, "reason": issue.reason}
                for issue in validator.issues[:PREVIEW_ISSUES]
            ],
            "problems": problems,
            "warnings": warnings,
        }

    # ---- network checks ---------------------------------------------------------------
    def check_database(self, url: str) -> None:
        """Refuse a database URL given over the network unless the operator allowed it: a
        SQLite file inside the data locations, another database matching an entry of
        TAGLOOP_ALLOWED_DATABASE_URLS (backend, host, port, database, user if given; no query
        parameters beyond the entry's, which could name files or hosts)."""
        parsed = sql_sources.parse_database_url(url)
        shown = sql_sources.shown_url(url)
        if parsed.get_backend_name() == "sqlite":
            if not parsed.database:
                raise self._refused(shown)
            try:
                self.data_locations.check(parsed.database, "database_url")
            except InvalidRequest as exc:
                raise self._refused(shown) from exc
            return
        for entry in self.settings.allowed_database_urls:
            try:
                allowed = make_url(normalize_url(entry))
            except Exception:
                continue
            if (
                allowed.get_backend_name() == parsed.get_backend_name()
                and (allowed.host or "").lower() == (parsed.host or "").lower()
                and allowed.port == parsed.port
                and allowed.database == parsed.database
                and (allowed.username is None or allowed.username == parsed.username)
                and (not parsed.query or dict(parsed.query) == dict(allowed.query))
            ):
                return
        raise self._refused(shown)

    @staticmethod
    def _refused(shown: str) -> LocationNotAllowed:
        return LocationNotAllowed(
            f"database_url {excerpt(shown, 200)} is not an allowed database (setting {DATABASE_SETTING})"
        )

    # ---- stored form ------------------------------------------------------------------
    def _stored(self, spec: ProfileSpec) -> dict[str, Any]:
        data = spec.as_dict()
        if spec.database_url is not None:
            data["database_url"] = sql_sources.shown_url(spec.database_url)
            data[SEALED] = self.box.seal(spec.database_url)
        return data

    def _spec(self, row: ImportProfileRow) -> ProfileSpec:
        data = dict(row.spec)
        sealed = data.pop(SEALED, None)
        if sealed is not None:
            data["database_url"] = self.box.open(sealed)
        return ProfileSpec.from_dict(data)

    @staticmethod
    def _view(classifier: str, row: ImportProfileRow) -> dict[str, Any]:
        spec = {key: value for key, value in row.spec.items() if key != SEALED}
        return {
            "classifier": classifier,
            "name": row.name,
            "spec": spec,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }


def _cut(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"
