"""Import profiles: how a source becomes ``(text, labels)`` rows, as a validated value.

A profile is saved per classifier (``services/profiles.py``) and read by ``tagloop train
--profile``, the inbox and ``profiles try``. It says:

- which format the file (or each archive member) has: the formats of :mod:`formats`, plus
  ``lines`` (one document per line), ``document`` (a whole member is one document) and
  ``sqlite`` (a SQLite database read with ``query``); or that the source is a database
  (``database_url``, any URL SQLAlchemy reaches) read with ``query``;
- which columns (CSV header, JSON keys, the query's result columns) hold the text (several are
  joined with ``joiner``) and the labels (split by ``label_delimiter`` in multi-label mode);
- which rows to keep (``filters``: a column's value in, or not in, a set of values);
- for archives, which members to read (``members``: glob patterns) and whether the label comes
  from a member's file name or folder (``label_from``), upper-cased, lower-cased or kept
  (``label_case``), or renamed by ``label_map``: ``hadoop.sqlite3.bz2`` → ``HADOOP``.

Pure: this module checks the spec and maps one record to a :class:`RawRow`; the services open
files, archives and databases. A spec comes from users (CLI flags, a JSON file, ``/v1``):
:meth:`ProfileSpec.from_dict` refuses unknown keys, wrong types and unbounded values, naming
the field.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tagloop.domain.formats import COMPREHEND_CSV, CSV, JSONL, RawRow
from tagloop.errors import InvalidRequest, RowIssue

LINES = "lines"  # one document per non-blank line (the label from the member)
DOCUMENT = "document"  # a whole file or member is one document
SQLITE = "sqlite"  # a SQLite database file, read with the profile's query
AUTO = "auto"  # from the file (member) name
FILE_FORMATS = (AUTO, COMPREHEND_CSV, CSV, JSONL, LINES, DOCUMENT, SQLITE)

LABEL_FROM = ("column", "member", "folder")
LABEL_CASES = ("upper", "lower", "keep")
MAX_COLUMNS = 20
MAX_FILTERS = 20
MAX_FILTER_VALUES = 100
MAX_PATTERNS = 50
MAX_LABEL_MAP = 1_000
MAX_NAME_CHARS = 256  # a column name, a pattern, a value, a label
MAX_QUERY_CHARS = 20_000
MAX_URL_CHARS = 2_048
MAX_JOINER_CHARS = 16
SPEC_KEYS = (
    "format",
    "text_columns",
    "label_column",
    "label_delimiter",
    "joiner",
    "filters",
    "query",
    "database_url",
    "members",
    "label_from",
    "label_case",
    "label_map",
)

# the extensions a member or file name loses before its format (and its label) is read from it
COMPRESSIONS = (".gz", ".bz2")
_SQLITE_NAMES = (".sqlite", ".sqlite3", ".db", ".db3")
_JSONL_NAMES = (".jsonl", ".json", ".ndjson")
_LINES_NAMES = (".txt",)

# SQL: a query must read. This static check gives the clear reason early; the connection is
# read-only as well (services/sql_sources.py), which is what actually holds.
_SQL_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]", re.DOTALL)
_SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_SQL_WORD = re.compile(r"[A-Za-z_]+")
_READ_STARTS = ("select", "with", "values")
_WRITE_WORDS = frozenset(
    [
        "insert",
        "update",
        "delete",
        "drop",
        "alter",
        "create",
        "attach",
        "detach",
        "pragma",
        "vacuum",
        "reindex",
        "grant",
        "revoke",
        "truncate",
        "copy",
        "merge",
        "call",
        "upsert",
        "into",
        "lock",
        "analyze",
    ]
)


@dataclass(frozen=True)
class Filter:
    """Keep a row when ``column``'s value is one of ``values`` (or, with ``exclude``, is not).

    Values compare as text: a number ``3`` equals ``"3"``, a missing value (NULL) equals ``""``.
    """

    column: str
    values: tuple[str, ...]
    exclude: bool = False

    @classmethod
    def parse(cls, expression: str) -> Filter:
        """``column=value`` (keep), ``column!=value`` (drop); ``column=a|b`` for several values."""
        exclude = "!=" in expression
        column, sep, values = expression.partition("!=" if exclude else "=")
        if not sep or not column.strip():
            raise InvalidRequest(
                f"filter {expression!r}: write COLUMN=VALUE (keep) or COLUMN!=VALUE (drop), "
                "several values joined by '|'"
            )
        return cls(column.strip(), tuple(values.split("|")), exclude)

    def __str__(self) -> str:
        return f"{self.column}{'!=' if self.exclude else '='}{'|'.join(self.values)}"


@dataclass(frozen=True)
class ProfileSpec:
    """One import profile (see the module doc); every field has a safe default."""

    format: str = AUTO
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    label_delimiter: str | None = None
    joiner: str = " "
    filters: tuple[Filter, ...] = ()
    query: str | None = None
    database_url: str | None = None
    members: tuple[str, ...] = ()
    label_from: str = "column"
    label_case: str = "upper"
    label_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FILE_FORMATS:
            raise InvalidRequest(f"format: {self.format!r} is not one of {', '.join(FILE_FORMATS)}")
        if self.label_from not in LABEL_FROM:
            raise InvalidRequest(f"label_from: {self.label_from!r} is not one of {', '.join(LABEL_FROM)}")
        if self.label_case not in LABEL_CASES:
            raise InvalidRequest(f"label_case: {self.label_case!r} is not one of {', '.join(LABEL_CASES)}")
        if self.format == COMPREHEND_CSV and (self.text_columns or self.label_column or self.filters):
            raise InvalidRequest(
                "format comprehend-csv has no named columns: use csv (a header row), jsonl, sqlite "
                "or a query to map columns or filter rows"
            )
        if self.format == COMPREHEND_CSV and self.label_from != "column":
            raise InvalidRequest(
                "format comprehend-csv has its label in its first column: label_from must be column"
            )
        if self.format in (LINES, DOCUMENT) and self.label_from == "column":
            raise InvalidRequest(
                f"format {self.format} has no label column: take the label from the member's file name "
                "or folder (label_from member or folder)"
            )
        if self.label_from != "column" and self.label_column:
            raise InvalidRequest(f"give either label_column or label_from {self.label_from}, not both")
        if self.database_url is not None:
            if self.query is None:
                raise InvalidRequest("database_url needs a query (the SQL that returns the rows)")
            if self.label_from != "column" or self.members:
                raise InvalidRequest("a database source has no members: label_from and members are for files")
        if self.format == SQLITE and self.query is None:
            raise InvalidRequest("format sqlite needs a query (the SQL that returns the rows)")
        if self.query is not None:
            check_read_query(self.query)
        if self.label_delimiter == "":
            raise InvalidRequest("label_delimiter must not be empty")
        if "\x00" in self.joiner:
            raise InvalidRequest("joiner must not contain a NUL character")

    @property
    def reads_database(self) -> bool:
        return self.database_url is not None

    @classmethod
    def from_dict(cls, data: object) -> ProfileSpec:
        """A spec from JSON-like data (a saved profile, a JSON file, a ``/v1`` body), checked."""
        if not isinstance(data, Mapping):
            raise InvalidRequest("a profile is a JSON object")
        unknown = sorted(str(key) for key in data if key not in SPEC_KEYS)
        if unknown:
            raise InvalidRequest(
                f"unknown profile field {', '.join(unknown)} (fields: {', '.join(SPEC_KEYS)})"
            )
        values: dict[str, Any] = {}
        for key in ("format", "label_from", "label_case"):
            if data.get(key) is not None:
                values[key] = _text(data[key], key, 32)
        for key in ("label_column", "label_delimiter"):
            if data.get(key) is not None:
                values[key] = _text(data[key], key, MAX_NAME_CHARS)
        if data.get("joiner") is not None:
            values["joiner"] = _text(data["joiner"], "joiner", MAX_JOINER_CHARS, allow_empty=True)
        if data.get("query") is not None:
            values["query"] = _text(data["query"], "query", MAX_QUERY_CHARS)
        if data.get("database_url") is not None:
            values["database_url"] = _text(data["database_url"], "database_url", MAX_URL_CHARS)
        if data.get("text_columns") is not None:
            values["text_columns"] = _names(data["text_columns"], "text_columns", MAX_COLUMNS)
        if data.get("members") is not None:
            values["members"] = _names(data["members"], "members", MAX_PATTERNS)
        if data.get("filters") is not None:
            values["filters"] = _filters(data["filters"])
        if data.get("label_map") is not None:
            values["label_map"] = _label_map(data["label_map"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The spec as JSON (what is stored and shown); defaults included, so it reads whole."""
        data = asdict(self)
        data["text_columns"] = list(self.text_columns)
        data["members"] = list(self.members)
        data["filters"] = [
            {"column": f.column, "values": list(f.values), "exclude": f.exclude} for f in self.filters
        ]
        data["label_map"] = dict(self.label_map)
        return data

    # ---- formats and labels of files and members ---------------------------------------
    def format_of(self, name: str) -> str:
        """The format of a file or member called ``name``: the spec's, else from the name."""
        if self.format != AUTO:
            return self.format
        plain = strip_compression(name.lower())
        if plain.endswith(_SQLITE_NAMES):
            if self.query is None:
                raise InvalidRequest(f"{name} is a SQLite database: give the profile a query")
            return SQLITE
        if plain.endswith(_JSONL_NAMES):
            return JSONL
        if plain.endswith(_LINES_NAMES) and self.label_from != "column":
            return LINES
        if plain.endswith((".csv", ".tsv")):
            mapped = self.text_columns or self.label_column or self.filters or self.label_from != "column"
            return CSV if mapped else COMPREHEND_CSV
        raise InvalidRequest(
            f"cannot tell the format of {name} from its name: set the profile's format "
            f"({', '.join(FILE_FORMATS[1:])}), or choose the archive members to read (members)"
        )

    def wants_member(self, name: str) -> bool:
        """Whether an archive member called ``name`` is read: it matches a ``members`` pattern
        (its whole path or its file name), or there are none; hidden and macOS resource files
        (``.DS_Store``, ``__MACOSX/``) never are."""
        base = name.rsplit("/", 1)[-1]
        if base.startswith(".") or name.startswith("__MACOSX/") or "/." in name:
            return False
        if not self.members:
            return True
        return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(base, p) for p in self.members)

    def member_label(self, name: str) -> str | None:
        """The label of every row of member ``name`` (``label_from`` member or folder), or None."""
        if self.label_from == "column":
            return None
        parts = name.split("/")
        if self.label_from == "folder":
            if len(parts) < 2:
                raise InvalidRequest(f"member {name} is in no folder: its label cannot come from its folder")
            raw = parts[-2]
        else:
            raw = strip_extensions(parts[-1])
        if raw in self.label_map:
            return self.label_map[raw]
        if self.label_case == "upper":
            return raw.upper()
        return raw.lower() if self.label_case == "lower" else raw

    # ---- records to rows ----------------------------------------------------------------
    def mapper(
        self, columns: Sequence[str], member_label: str | None = None, member: str | None = None
    ) -> Callable[[int, Sequence[object]], RawRow | RowIssue | None]:
        """A function from (line, values in ``columns`` order) to a RawRow, a RowIssue, or None
        for a row a filter drops; the column names are resolved once (a missing one is refused
        here, naming the columns there are). ``member`` names where the rows come from in
        their issues (an archive member, a query)."""
        names = list(columns)
        text_columns = self.text_columns or (("text",) if "text" in names else ())
        if not text_columns:
            raise InvalidRequest(
                f"{member + ': ' if member else ''}no text column: name the column(s) holding the text "
                f"(columns: {', '.join(names)})"
            )
        label_column = self.label_column
        if label_column is None and member_label is None and self.label_from == "column":
            label_column = next((c for c in ("labels", "label") if c in names), None)
        wanted = [*text_columns, *([label_column] if label_column else []), *(f.column for f in self.filters)]
        missing = [c for c in dict.fromkeys(wanted) if c not in names]
        if missing:
            raise InvalidRequest(
                f"{member + ': ' if member else ''}column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} not found "
                f"(columns: {', '.join(names)})"
            )
        text_idx = [names.index(c) for c in text_columns]
        label_idx = names.index(label_column) if label_column else None
        tests = [(names.index(f.column), frozenset(f.values), f.exclude) for f in self.filters]
        joiner = self.joiner
        single_text = text_idx[0] if len(text_idx) == 1 else None

        def row(line: int, values: Sequence[object]) -> RawRow | RowIssue | None:
            for index, allowed, exclude in tests:
                value = values[index]
                shown = "" if value is None else value if isinstance(value, str) else _as_text(value)
                if (shown in allowed) == exclude:
                    return None
            if single_text is not None:
                text = values[single_text]
                if not isinstance(text, str):
                    if text is None:
                        text = ""
                    else:
                        converted = _as_text(text)
                        if converted is None:
                            return RowIssue(line, "text is not UTF-8 text", member)
                        text = converted
            else:
                parts = []
                for index in text_idx:
                    part = values[index]
                    if part is None:
                        continue
                    if not isinstance(part, str):
                        part = _as_text(part)
                        if part is None:
                            return RowIssue(line, "text is not UTF-8 text", member)
                    if part.strip():
                        parts.append(part)
                text = joiner.join(parts)
            if "\x00" in text:
                return RowIssue(line, "contains a NUL character (not allowed in text)", member)
            if member_label is not None:
                return RawRow(line, text, member_label, None, member)
            if label_idx is None:
                return RawRow(line, text, None, None, member)
            label = values[label_idx]
            if label is None or isinstance(label, str | list):
                return RawRow(line, text, label, None, member)
            converted = _as_text(label)
            if converted is None:
                return RowIssue(line, "label is not text", member)
            return RawRow(line, text, converted, None, member)

        return row


def _as_text(value: object) -> str | None:
    """A database or JSON value as text: numbers printed, bytes decoded; None if not text."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def strip_compression(name: str) -> str:
    for suffix in COMPRESSIONS:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def strip_extensions(name: str) -> str:
    """A file name without its extensions: ``hadoop.sqlite3.bz2`` → ``hadoop``; a name that is
    only an extension (``.env``) keeps it."""
    stem = name.split(".", 1)[0]
    return stem or name


def check_read_query(query: str) -> None:
    """Refuse a query that is not one reading statement (SELECT, WITH … SELECT, VALUES), naming
    the word that writes. Strings, quoted names and comments are ignored."""
    body = _SQL_COMMENTS.sub(" ", _SQL_STRINGS.sub("''", query)).strip().rstrip(";").strip()
    if not body:
        raise InvalidRequest("query is empty")
    if ";" in body:
        raise InvalidRequest("query: give one statement (a ';' separates several)")
    words = [w.lower() for w in _SQL_WORD.findall(body)]
    if not words or words[0] not in _READ_STARTS:
        first = words[0].upper() if words else "?"
        raise InvalidRequest(f"query must read: start it with SELECT or WITH (it starts with {first})")
    writing = next((w for w in words if w in _WRITE_WORDS), None)
    if writing is not None:
        raise InvalidRequest(f"query must only read: {writing.upper()} writes or changes the database")


def _text(value: object, key: str, limit: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{key}: must be a string")
    if (not value and not allow_empty) or len(value) > limit:
        raise InvalidRequest(f"{key}: must be 1 to {limit:,} characters")
    return value


def _names(value: object, key: str, most: int) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or len(value) > most:
        raise InvalidRequest(f"{key}: must be a list of at most {most} strings")
    return tuple(_text(item, key, MAX_NAME_CHARS) for item in value)


def _filters(value: object) -> tuple[Filter, ...]:
    if not isinstance(value, list) or len(value) > MAX_FILTERS:
        raise InvalidRequest(f"filters: must be a list of at most {MAX_FILTERS} filters")
    found = []
    for item in value:
        if isinstance(item, str):
            found.append(Filter.parse(_text(item, "filters", MAX_NAME_CHARS * 4)))
            continue
        if (
            not isinstance(item, Mapping)
            or set(item) - {"column", "values", "exclude"}
            or "column" not in item
        ):
            raise InvalidRequest(
                'filters: each is "COLUMN=VALUE" or {"column": ..., "values": [...], "exclude": false}'
            )
        values = item.get("values", [])
        if not isinstance(values, list) or not values or len(values) > MAX_FILTER_VALUES:
            raise InvalidRequest(f"filters.values: must be a list of 1 to {MAX_FILTER_VALUES} strings")
        exclude = item.get("exclude", False)
        if not isinstance(exclude, bool):
            raise InvalidRequest("filters.exclude: must be true or false")
        found.append(
            Filter(
                _text(item["column"], "filters.column", MAX_NAME_CHARS),
                tuple(_text(v, "filters.values", MAX_NAME_CHARS, allow_empty=True) for v in values),
                exclude,
            )
        )
    return tuple(found)


def _label_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or len(value) > MAX_LABEL_MAP:
        raise InvalidRequest(f"label_map: must be an object of at most {MAX_LABEL_MAP:,} names")
    return {
        _text(key, "label_map", MAX_NAME_CHARS): _text(label, "label_map", MAX_NAME_CHARS)
        for key, label in value.items()
    }
