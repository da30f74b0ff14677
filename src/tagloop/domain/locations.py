"""Data locations (a local path or an fsspec URL) parsed into parts that can be compared safely.

Pure parsing: no file system is touched here (the symlink half of the policy lives in
``services/data_locations.py``). A location that cannot be compared safely parses to None:
protocol chaining (``::``), ``.`` or ``..`` segments, empty segments (``a//b``), control
characters, relative paths, user info in a host, queries and fragments. Percent-encoded
segments are checked decoded too, so ``%2e%2e`` is no way around the rule.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import unquote

LOCAL = "file"
_PROTOCOL = re.compile(r"[a-z][a-z0-9+.\-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Location:
    """A parsed location: ``file`` + an absolute path, or a protocol + host (bucket) + key."""

    protocol: str
    host: str
    path: str

    @property
    def is_local(self) -> bool:
        return self.protocol == LOCAL

    def within(self, root: Location) -> bool:
        """Whether this location is ``root`` or below it, at a folder boundary."""
        if (self.protocol, self.host) != (root.protocol, root.host):
            return False
        base = root.path.rstrip("/")
        path = self.path.rstrip("/")
        if not base:
            return True
        return path == base or path.startswith(base + "/")


def parse_location(url: str) -> Location | None:
    """The parts of ``url``, or None if it cannot be compared safely (see the module doc).

    A plain absolute path is the same location as its ``file://`` URL.
    """
    if not isinstance(url, str) or not url or _CONTROL.search(url) or "::" in url:
        return None
    if "://" not in url:
        return _local(url) if url.startswith("/") else None
    protocol, rest = url.split("://", 1)
    protocol = protocol.lower()
    if not _PROTOCOL.fullmatch(protocol):
        return None
    if protocol == LOCAL:
        return _local(rest) if rest.startswith("/") else None  # file:///path only, no host
    host, _, key = rest.partition("/")
    if not host or "@" in host or any(char in rest for char in "?#\\") or "://" in rest:
        return None
    if not _clean_segments(key) or not _clean_segments(unquote(key)):
        return None
    return Location(protocol, host, key)


def _local(path: str) -> Location | None:
    if "://" in path or "\\" in path:
        return None
    if not _clean_segments(path.lstrip("/"), allow_empty=True):
        return None
    normal = posixpath.normpath(path)
    return Location(LOCAL, "", "/" + normal.lstrip("/"))


def _clean_segments(key: str, allow_empty: bool = False) -> bool:
    """No ``.``/``..`` segments; no empty segments (``a//b``) unless allowed; a final ``/`` is fine."""
    if not key:
        return True
    segments = key.rstrip("/").split("/") if key.rstrip("/") else []
    for segment in segments:
        if segment in (".", ".."):
            return False
        if not segment and not allow_empty:
            return False
    return True
