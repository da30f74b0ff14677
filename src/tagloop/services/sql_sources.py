"""Rows of an import profile's SQL query, from a SQLite file or any database URL SQLAlchemy
reaches, on a read-only connection, with a row limit and a timeout.

Read-only is held by the connection, not only by the profile's static check
(``domain/profiles.check_read_query``): a SQLite file is opened ``mode=ro`` with
``PRAGMA query_only`` and an authorizer that lets through reading only (no ATTACH, no PRAGMA,
no write); PostgreSQL runs the query in a ``READ ONLY`` transaction with a
``statement_timeout``; MySQL/MariaDB in a read-only transaction with ``max_execution_time``.
Every transaction is rolled back. Other databases are refused: tagloop cannot make their
connections read-only. A query that returns more than the row limit is refused (never cut
short silently: a model trained on part of the data would look fine).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import quote

import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from tagloop.domain.formats import RawRow
from tagloop.errors import InvalidRequest, LimitExceeded, RowIssue
from tagloop.storage.database import normalize_url

FETCH = 2_000
CONNECT_SECONDS = 10  # at most this long to connect (the query's timeout, if shorter)
Mapper = Callable[[int, Sequence[object]], RawRow | RowIssue | None]
MapperFor = Callable[[Sequence[str]], Mapper]

# what a read-only SQLite connection may do (sqlite3's authorizer action codes)
_SQLITE_READING = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}
READ_ONLY_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb")


def _limit_reason(rows: int, where: str) -> str:
    return f"{where}: the query returns more than {rows:,} rows (setting TAGLOOP_IMPORT_MAX_ROWS)"


def _timeout_reason(seconds: float, where: str) -> str:
    return f"{where}: the query ran longer than {seconds:g} s (setting TAGLOOP_IMPORT_QUERY_TIMEOUT_SECONDS)"


def _rows(
    fetch: Callable[[int], Sequence[Sequence[object]]],
    mapper: Mapper,
    max_rows: int,
    deadline: float,
    timeout: float,
    where: str,
    tally: dict[str, int] | None = None,
) -> Iterator[RawRow | RowIssue]:
    """The mapped rows, batch by batch; ``tally`` hears after each batch how many rows were
    given out (``rows``) and how many the mapper dropped (``filtered``)."""
    line = kept = 0
    while True:
        batch = fetch(FETCH)
        if not batch:
            return
        if line + len(batch) > max_rows:
            raise LimitExceeded(_limit_reason(max_rows, where))
        if time.monotonic() > deadline:
            raise LimitExceeded(_timeout_reason(timeout, where))
        for values in batch:
            line += 1
            row = mapper(line, values)
            if row is not None:
                kept += 1
                yield row
        if tally is not None:
            tally["rows"], tally["filtered"] = kept, line - kept


def sqlite_rows(
    path: str,
    query: str,
    mapper_for: MapperFor,
    max_rows: int,
    timeout: float,
    where: str,
    immutable: bool = False,
    tally: dict[str, int] | None = None,
) -> Iterator[RawRow | RowIssue]:
    """The query's rows from the SQLite file at ``path`` (``immutable``: a private copy no one
    writes, read without locks). ``where`` names the file in every message."""
    uri = f"file:{quote(path)}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise InvalidRequest(f"{where}: cannot open it as a SQLite database ({exc})") from exc
    deadline = time.monotonic() + timeout
    try:
        connection.execute("PRAGMA query_only = ON")
        connection.set_authorizer(
            lambda action, *_: sqlite3.SQLITE_OK if action in _SQLITE_READING else sqlite3.SQLITE_DENY
        )
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            cursor = connection.execute(query)
        except sqlite3.DatabaseError as exc:
            raise _sqlite_error(exc, where, timeout) from exc
        if cursor.description is None:
            raise InvalidRequest(f"{where}: the query returns no rows")
        mapper = mapper_for([column[0] for column in cursor.description])
        try:
            yield from _rows(cursor.fetchmany, mapper, max_rows, deadline, timeout, where, tally)
        except sqlite3.DatabaseError as exc:
            raise _sqlite_error(exc, where, timeout) from exc
    finally:
        connection.close()


def _sqlite_error(exc: sqlite3.DatabaseError, where: str, timeout: float) -> InvalidRequest:
    message = str(exc)
    if "interrupted" in message:
        return LimitExceeded(_timeout_reason(timeout, where))
    if "not authorized" in message or "readonly" in message or "read-only" in message:
        return InvalidRequest(f"{where}: the query must only read ({message})")
    if "not a database" in message or "malformed" in message:
        return InvalidRequest(f"{where}: not a SQLite database, or a damaged one ({message})")
    return InvalidRequest(f"{where}: the query failed: {message}")


def shown_url(url: str) -> str:
    """A database URL with its password hidden (what is stored in sources, shown, logged)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an invalid database URL)"


def parse_database_url(url: str) -> sqlalchemy.URL:
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError as exc:
        raise InvalidRequest(f"database_url: not a database URL ({exc})") from exc
    if parsed.get_backend_name() not in READ_ONLY_DIALECTS:
        raise InvalidRequest(
            f"database_url: tagloop reads {', '.join(READ_ONLY_DIALECTS)} databases only (it makes their "
            f"connections read-only), not {parsed.get_backend_name()}"
        )
    return parsed


def database_rows(
    url: str,
    query: str,
    mapper_for: MapperFor,
    max_rows: int,
    timeout: float,
    tally: dict[str, int] | None = None,
) -> Iterator[RawRow | RowIssue]:
    """The query's rows from the database at ``url``, on a read-only connection."""
    parsed = parse_database_url(url)
    where = shown_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidRequest("database_url: a sqlite URL must name a file")
        yield from sqlite_rows(parsed.database, query, mapper_for, max_rows, timeout, where, tally=tally)
        return
    deadline = time.monotonic() + timeout
    try:
        seconds = max(1, min(int(timeout), CONNECT_SECONDS))  # a host that never answers
        engine = sqlalchemy.create_engine(
            parsed, poolclass=NullPool, connect_args={"connect_timeout": seconds}
        )
    except (NoSuchModuleError, ArgumentError) as exc:
        raise InvalidRequest(f"{where}: no driver for this database ({exc})") from exc
    try:
        with engine.connect() as connection:
            milliseconds = max(1, int(timeout * 1000))
            if parsed.get_backend_name() == "postgresql":
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
            else:
                connection.exec_driver_sql(f"SET SESSION max_execution_time = {milliseconds}")
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            result = connection.execution_options(stream_results=True).exec_driver_sql(query)
            if not result.returns_rows:
                raise InvalidRequest(f"{where}: the query returns no rows")
            mapper = mapper_for(list(result.keys()))
            yield from _rows(result.fetchmany, mapper, max_rows, deadline, timeout, where, tally)
            connection.rollback()
    except DBAPIError as exc:
        raise _database_error(exc, where, timeout) from exc
    except SQLAlchemyError as exc:
        raise InvalidRequest(f"{where}: the query failed ({type(exc).__name__})") from exc
    finally:
        engine.dispose()


def _database_error(exc: DBAPIError, where: str, timeout: float) -> InvalidRequest:
    message = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    lowered = message.lower()
    if "statement timeout" in lowered or "max_execution_time" in lowered or "canceling statement" in lowered:
        return LimitExceeded(_timeout_reason(timeout, where))
    if "read-only" in lowered or "read only" in lowered:
        return InvalidRequest(f"{where}: the query must only read ({message})")
    if exc.connection_invalidated or ("connection" in lowered and "failed" in lowered):
        return InvalidRequest(f"{where}: cannot connect ({message})")
    return InvalidRequest(f"{where}: the query failed: {message}")
