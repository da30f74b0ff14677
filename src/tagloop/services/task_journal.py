"""The write-ahead journal of routed review tasks: an answer may say "routed" before its task is
committed, because the task is in this journal first.

Each serving process appends the tasks of a request as one record (length, CRC-32, the tasks
as JSON) with one ``os.write`` on an ``O_APPEND`` file descriptor: once it returns, the bytes are
in the kernel's page cache and survive the process being killed (SIGKILL, OOM killer, a
crash of Python); only a crash of the machine (or its power) can lose the last seconds of
records not yet written back to disk (``TAGLOOP_ROUTING_WAIT_FOR_COMMIT=true`` makes answers
wait for the database commit instead).

Files: ``<data dir>/review-journal/<pid>-<random>-<n>.journal`` (folder 0700, files 0600). A
process holds an exclusive ``flock`` on each of its segments while it lives (taken before the
file gets its ``.journal`` name), so the start-up :func:`replay` of another process never
takes a live journal. A segment is closed for appends after ``MAX_RECORDS`` records or
``MAX_SECONDS`` seconds, and deleted once every record of it is acknowledged as committed by
the task writer; a segment with a failed write is kept for the next start's replay.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import pickle
import secrets
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask, Queue
from tagloop.storage.private import open_private, private_folder

log = logging.getLogger(__name__)

SUFFIX = ".journal"
MAX_RECORDS = 2_000
MAX_SECONDS = 5.0
_HEADER = struct.Struct(">II")  # payload length, CRC-32 of the payload
_JSON = orjson.OPT_SERIALIZE_NUMPY  # as the database's JSON columns are written
_PICKLED = b"\x80"


def encode(tasks: Sequence[NewTask]) -> bytes:
    """One record: the tasks of a request (a torn or damaged record fails its CRC).

    The payload is the tasks as JSON objects (orjson: 1 µs for a routed task, where pickling
    the dataclass took 9 µs of the serving process's event loop), or, for a task JSON cannot
    hold exactly (a string with a lone surrogate, an integer over 64 bits), a pickle."""
    try:
        payload = orjson.dumps(tasks if isinstance(tasks, list) else list(tasks), option=_JSON)
    except TypeError:  # orjson.JSONEncodeError
        payload = pickle.dumps(list(tasks), protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _tasks(payload: bytes) -> list[NewTask]:
    if payload[:1] == _PICKLED:  # the pickle protocol's first opcode, never JSON's `[`
        return list(pickle.loads(payload))  # a private file of this server's own (0600)
    tasks = []
    for fields in orjson.loads(payload):
        fields["mode"] = Mode(fields["mode"])
        fields["choices"] = tuple(fields["choices"])
        fields["queue"] = Queue(fields["queue"])
        tasks.append(NewTask(**fields))
    return tasks


def decode(data: bytes) -> list[NewTask]:
    """The tasks of the whole records at the start of ``data``; a torn (or damaged) record and
    what follows it are skipped: a process killed in the middle of a write leaves at most one,
    the last, and its answer did not say routed."""
    tasks: list[NewTask] = []
    start = 0
    while len(data) - start >= _HEADER.size:
        size, crc = _HEADER.unpack_from(data, start)
        payload = data[start + _HEADER.size : start + _HEADER.size + size]
        if len(payload) < size or zlib.crc32(payload) != crc:
            log.warning("review task journal: a torn record at byte %d skipped", start)
            break
        tasks.extend(_tasks(payload))
        start += _HEADER.size + size
    return tasks


class Segment:
    __slots__ = ("failed", "fd", "path", "pending", "records", "started")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.records = 0  # appended
        self.pending = 0  # appended, not yet acknowledged as committed
        self.failed = False  # a write failed: kept for the next start's replay
        self.started = time.monotonic()


class Journal:
    """This process's segments in ``folder`` (see the module docstring). Not thread-safe: used
    from the event loop of a server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.number = 0
        self.current: Segment | None = None
        self.retired: list[Segment] = []

    def append(self, tasks: Sequence[NewTask]) -> Segment | None:
        """Write ``tasks`` as one record: :meth:`append_record`."""
        return self.append_record(encode(tasks))

    def append_record(self, record: bytes) -> Segment | None:
        """Write one record (:func:`encode`); the segment holding it (to :meth:`done` once its
        tasks are committed), or None if it could not be written (the answer says not routed)."""
        try:
            segment = self._segment()
            if os.write(segment.fd, record) != len(record):  # a full disk: a short write
                raise OSError(errno.ENOSPC, "short write")
        except OSError:
            log.exception("review task journal: a record could not be written: not routed")
            if self.current is not None:
                self._retire(self.current)  # a short write may have left a torn record
            return None
        segment.records += 1
        segment.pending += 1
        return segment

    def done(self, segment: Segment, committed: bool) -> None:
        """One record of ``segment`` committed (or not: the segment is then kept)."""
        segment.pending -= 1
        if not committed:
            segment.failed = True
        if segment is not self.current and segment.pending <= 0 and not segment.failed:
            self._delete(segment)

    def close(self) -> None:
        """Delete the segments whose records are all committed; leave the others (and release
        their locks) for the next start's replay."""
        segments = self.retired + ([self.current] if self.current is not None else [])
        self.current, self.retired = None, []
        for segment in segments:
            if segment.pending <= 0 and not segment.failed:
                self._delete(segment)
            else:
                os.close(segment.fd)

    def _segment(self) -> Segment:
        segment = self.current
        if segment is not None and (
            segment.records >= MAX_RECORDS or time.monotonic() - segment.started >= MAX_SECONDS
        ):
            self._retire(segment)
            segment = None
        if segment is None:
            segment = self.current = self._create()
        return segment

    def _create(self) -> Segment:
        private_folder(self.folder)
        self.number += 1
        name = f"{os.getpid()}-{secrets.token_hex(4)}-{self.number}"  # the pid of now: after a fork too
        hidden = self.folder / f"{name}.new"  # not a .journal until locked: replay skips it
        fd = open_private(hidden, os.O_WRONLY | os.O_APPEND | os.O_EXCL)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = self.folder / f"{name}{SUFFIX}"
            os.rename(hidden, path)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(hidden)
            raise
        return Segment(path, fd)

    def _retire(self, segment: Segment) -> None:
        if segment is self.current:
            self.current = None
        if segment.pending <= 0 and not segment.failed:
            self._delete(segment)
        else:
            self.retired.append(segment)

    def _delete(self, segment: Segment) -> None:
        with contextlib.suppress(ValueError):
            self.retired.remove(segment)
        with contextlib.suppress(OSError):
            os.unlink(segment.path)  # while still locked: nobody replays it meanwhile
        with contextlib.suppress(OSError):
            os.close(segment.fd)


def replay(folder: Path, insert: Callable[[Sequence[NewTask]], Any]) -> int:
    """Insert the tasks of every segment in ``folder`` whose process is gone (its lock free),
    then delete the segment; ``insert`` must skip ids already stored (a segment's tasks may
    have been committed before its process died). A segment whose insert fails is left for
    the next start. The number of tasks read."""
    if not folder.is_dir():
        return 0
    total = 0
    for path in sorted(folder.iterdir()):
        if path.suffix not in (SUFFIX, ".new"):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # deleted meanwhile by its owner or another replay
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process's journal
            with os.fdopen(os.dup(fd), "rb") as file:
                tasks = decode(file.read())
            if tasks:
                insert(tasks)
                log.warning("review task journal %s: %d tasks replayed", path.name, len(tasks))
            total += len(tasks)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        except Exception:
            log.exception("review task journal %s could not be replayed: kept for the next start", path.name)
        finally:
            os.close(fd)
    return total
