"""Reading the members of an archive (``.zip``, ``.tar``, ``.tar.gz``, ``.tar.bz2``) or a single
file, decompressed (``.gz``/``.bz2`` members too), as streams, under the archive rules of
``domain/archives.py``.

Nothing is extracted by a member's own name: the caller reads each stream (and copies a SQLite
member to a temporary file of its own naming). Member names are still checked, so an archive
built to escape an extraction folder is refused with its reason rather than read; a zip's
names are all checked before its first member is read. Every byte decompressed is counted as
it comes out, so the ratio and size limits hold whatever sizes the archive declares.
"""

from __future__ import annotations

import bz2
import gzip
import io
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, BinaryIO

from tagloop.domain.archives import ArchiveLimits, Budget, is_archive, member_path
from tagloop.errors import ArchiveRefused, DatasetInvalid
from tagloop.services.datasets import open_source

CHUNK = 1 << 16
# what a damaged archive or compressed member raises while it is read
DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)


@dataclass(frozen=True)
class Member:
    """One file to read: its path in the archive (the file's base name for a plain file), its
    decompressed content, whether it came out of an archive, and the caller's hint whether the
    content is a local file to open in place (an uncompressed local path: ``local_path``)."""

    name: str
    stream: BinaryIO
    in_archive: bool
    local_path: str | None = None


class _Counted(io.RawIOBase):
    """A stream that reports how many bytes it has given out so far after every read."""

    def __init__(self, inner: IO[bytes], on_read: Callable[[int], None]) -> None:
        self.inner = inner
        self.on_read = on_read
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        if size:
            self.produced += size
            self.on_read(self.produced)
        return size


def _decompressed(name: str, raw: IO[bytes]) -> IO[bytes]:
    lower = name.lower()
    if lower.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if lower.endswith(".bz2"):
        return bz2.BZ2File(raw, "rb")
    return raw


def _member_stream(
    budget: Budget, name: str, raw: IO[bytes], stored: int, also: Callable[[], None] | None = None
) -> BinaryIO:
    """``raw`` (a member's bytes, ``stored`` of them compressed in the archive, or the file's
    size) decompressed by the member's suffix; its output counted against the limits as it
    comes out (``also`` runs after each count: the archive-wide check of a compressed tar)."""
    previous = [0]

    def count(produced: int) -> None:
        budget.ratio(f"member {name}", produced, stored)
        budget.grow(name, produced - previous[0])
        previous[0] = produced
        if also is not None:
            also()

    return io.BufferedReader(_Counted(_decompressed(name, raw), count), CHUNK)


@contextmanager
def reading(source: str, member: str | None) -> Iterator[None]:
    """Turn a damaged archive or member into a clear refusal naming it."""
    try:
        yield
    except ArchiveRefused:
        raise
    except DAMAGED as exc:
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            raise
        detail = str(exc).strip() or type(exc).__name__
        where = f"member {member}" if member else "archive"
        raise DatasetInvalid(source, [], [f"{where} is truncated or damaged ({detail})"]) from exc


@contextmanager
def members(source: str, limits: ArchiveLimits, wanted: Callable[[str], bool]) -> Iterator[Iterator[Member]]:
    """The members of archive ``source`` that ``wanted`` selects, one at a time (each must be
    read, or left, before the next); a plain file is one member, decompressed by its suffix."""
    budget = Budget(source, limits)
    with open_source(source, compression=None) as handle:
        if not is_archive(source):
            yield _single(source, handle, budget)
        elif source.lower().endswith(".zip"):
            with reading(source, None):
                archive = zipfile.ZipFile(handle)
            with archive:
                yield _zip_members(source, archive, budget, wanted)
        else:
            yield _tar_members(source, handle, budget, wanted)


def _single(source: str, handle: BinaryIO, budget: Budget) -> Iterator[Member]:
    name = posixpath.basename(source.rstrip("/")) or source
    budget.count_members(1)
    compressed = name.lower().endswith((".gz", ".bz2"))
    local = (
        source.removeprefix("file://")
        if not compressed and ("://" not in source or source.startswith("file://"))
        else None
    )
    with reading(source, None):
        yield Member(name, _member_stream(budget, name, handle, _size(handle)), False, local)


def _size(handle: BinaryIO) -> int:
    try:
        position = handle.tell()
        size = handle.seek(0, io.SEEK_END)
        handle.seek(position)
        return int(size)
    except (OSError, ValueError):
        return 0


def _zip_members(
    source: str, archive: zipfile.ZipFile, budget: Budget, wanted: Callable[[str], bool]
) -> Iterator[Member]:
    files = [info for info in archive.infolist() if not info.is_dir()]
    budget.count_members(len(files))
    chosen: list[tuple[str, zipfile.ZipInfo]] = []
    declared = 0
    for info in archive.infolist():  # every name is checked before anything is read
        name = member_path(source, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveRefused(
                f"{source}: member {name} is a symbolic link (links are not read from archives)"
            )
        if info.is_dir() or not name:
            continue
        declared += info.file_size
        if wanted(name):
            chosen.append((name, info))
    if declared > budget.limits.max_total_bytes:
        raise ArchiveRefused(
            f"{source}: its members declare {declared:,} bytes unpacked, over "
            f"{budget.limits.max_total_bytes:,} (setting TAGLOOP_ARCHIVE_MAX_TOTAL_BYTES): refused as a "
            "possible archive bomb"
        )
    for name, info in chosen:
        with reading(source, name), archive.open(info) as raw:
            yield Member(name, _member_stream(budget, name, raw, info.compress_size), True)


def _tar_members(
    source: str, handle: BinaryIO, budget: Budget, wanted: Callable[[str], bool]
) -> Iterator[Member]:
    consumed = _Counted(handle, lambda _: None)  # the archive's bytes read so far (compressed)
    unpacked = [0]  # the tar stream's bytes: member contents, whether read or skipped

    def archive_ratio() -> None:
        budget.ratio("the archive", budget.total, consumed.produced)

    with reading(source, None):
        archive = tarfile.open(fileobj=io.BufferedReader(consumed, CHUNK), mode="r|*")  # noqa: SIM115
    with archive:
        while True:
            with reading(source, None):
                info = archive.next()
            if info is None:
                return
            name = member_path(source, info.name)
            if info.issym() or info.islnk():
                raise ArchiveRefused(f"{source}: member {name} is a link (links are not read from archives)")
            if info.isdir() or not name:
                continue
            if not info.isfile():
                raise ArchiveRefused(f"{source}: member {name} is not a regular file (a device or a pipe)")
            budget.count_members(1)
            unpacked[0] += info.size
            if unpacked[0] > budget.limits.max_total_bytes:
                raise ArchiveRefused(
                    f"{source}: member {name} takes the unpacked size over {budget.limits.max_total_bytes:,} "
                    "bytes (setting TAGLOOP_ARCHIVE_MAX_TOTAL_BYTES): refused as a possible archive bomb"
                )
            if not wanted(name):
                continue
            raw = archive.extractfile(info)
            if raw is None:
                continue
            with reading(source, name):
                yield Member(name, _member_stream(budget, name, raw, info.size, archive_ratio), True)
