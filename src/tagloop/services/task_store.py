"""What the review task writer process runs (kept light: a spawned process imports only this,
the storage layer and the review value types, not the models' libraries)."""

from __future__ import annotations

import logging
import pickle
import select
import signal
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from tagloop.domain.review import NewTask
from tagloop.services.task_journal import decode
from tagloop.storage.database import Database
from tagloop.storage.review import task_row
from tagloop.storage.tables import ReviewTaskRow, utcnow

log = logging.getLogger(__name__)
LINGER_SECONDS = 0.001
REVIEW_TASKS: Table = ReviewTaskRow.__table__  # type: ignore[assignment]  # a declarative class's Table

Write = Callable[[Sequence[NewTask]], Any]
"""Writes tasks in one transaction (``ReviewService.add_tasks``); raises if it could not."""


def insert_tasks(database: Database, tasks: Sequence[NewTask]) -> list[str]:
    """Insert ``tasks`` as ``review_tasks`` rows in one transaction (rows as
    ``ReviewService.add_tasks`` makes them); their ids."""
    now = utcnow()
    rows = [task_row(task, now) for task in tasks]
    with database.engine.begin() as connection:  # Core, not an ORM session: 240 µs a transaction, not 600
        connection.execute(insert(REVIEW_TASKS), rows)
    return [str(row["id"]) for row in rows]


def insert_new_tasks(database: Database, tasks: Sequence[NewTask]) -> int:
    """Insert those of ``tasks`` whose ids are not stored yet (a journal's replay, run again
    after a crash: ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL); a task that
    cannot be stored otherwise (its classifier deleted meanwhile, say) is logged and skipped.
    The number of tasks handled."""
    now = utcnow()
    rows = [task_row(task, now) for task in tasks]
    module = postgresql if database.engine.dialect.name == "postgresql" else sqlite
    statement = module.insert(REVIEW_TASKS).on_conflict_do_nothing()
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        try:
            with database.engine.begin() as connection:
                connection.execute(statement, chunk)
        except IntegrityError:
            for row in chunk:
                try:
                    with database.engine.begin() as connection:
                        connection.execute(statement, [row])
                except IntegrityError:
                    log.exception("review task %s could not be stored: skipped", row["id"])
    return len(rows)


def child_write(database: Database) -> Write:
    """What the writer process writes with."""
    return lambda tasks: insert_tasks(database, tasks)


_LENGTH = struct.Struct(">I")


def frame(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def unframe(buffer: bytearray) -> list[Any]:
    """The complete frames at the start of ``buffer`` (removed from it)."""
    values = []
    start = 0
    while len(buffer) - start >= 4:
        (size,) = _LENGTH.unpack_from(buffer, start)
        if len(buffer) - start - 4 < size:
            break
        values.append(pickle.loads(bytes(buffer[start + 4 : start + 4 + size])))
        start += 4 + size
    del buffer[:start]
    return values


def channel_process(database_url: str, sock: socket.socket) -> None:
    """The writer process: reads batches ``(number, records)`` (the records of the requests
    of a loop turn, as their journal holds them: ``task_journal.encode``); whatever has arrived
    together is written in one transaction (each batch on its own if that fails), then each batch is
    acknowledged ``(number, committed)``. Ends when the server's side closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the server, which closes us
    database = Database(database_url)
    write = child_write(database)
    buffer = bytearray()
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            buffer += chunk
            wait = LINGER_SECONDS  # what arrives this soon shares the transaction (a commit costs
            while select.select([sock], [], [], wait)[0]:  # ~200 µs of CPU, a task ~15-40 µs)
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                buffer += chunk
                wait = 0
            batches = [(number, decode(records)) for number, records in unframe(buffer)]
            if batches:
                sock.sendall(frame(commit_batches(write, batches)))
    except OSError:  # the server process is gone
        return
    finally:
        database.dispose()


def commit_batches(write: Write, batches: list[tuple[int, list[NewTask]]]) -> list[tuple[int, bool]]:
    try:
        write([task for _, tasks in batches for task in tasks])
        return [(number, True) for number, _ in batches]
    except Exception:
        if len(batches) == 1:
            log.exception("writing %d review tasks failed", len(batches[0][1]))
            return [(batches[0][0], False)]
    results = []
    for number, tasks in batches:
        try:
            write(tasks)
            results.append((number, True))
        except Exception:
            log.exception("writing %d review tasks failed", len(tasks))
            results.append((number, False))
    return results
