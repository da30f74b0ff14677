"""The rules an archive must keep before tagloop reads it: member paths that stay inside their
folder, and limits against archive bombs (compression ratio, member count, total size).

Pure: ``services/archives.py`` applies them while it streams the members, counting the bytes it
actually decompresses (never trusting the sizes an archive declares).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tagloop.errors import ArchiveRefused

RATIO_FLOOR_BYTES = 1_048_576  # below this much output the ratio is not judged (tiny files compress oddly)
ARCHIVE_NAMES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2")
_DRIVE = re.compile(r"^[A-Za-z]:")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_NAMES)


@dataclass(frozen=True)
class ArchiveLimits:
    """TAGLOOP_ARCHIVE_MAX_RATIO, _MAX_MEMBERS and _MAX_TOTAL_BYTES."""

    max_ratio: float = 200.0
    max_members: int = 10_000
    max_total_bytes: int = 10_000_000_000


def member_path(source: str, name: str) -> str:
    """The member's path inside the archive, normalised; refuses one that could escape the
    folder it would be extracted to: absolute, with a drive letter, with a ``..`` segment, or
    with a NUL or control character. A Windows ``\\`` counts as a separator."""
    shown = name if len(name) <= 200 else name[:200] + "…"
    path = name.replace("\\", "/")
    if any(ord(char) < 32 for char in path):
        raise ArchiveRefused(f"{source}: member {shown!r} has a control character in its name")
    if path.startswith("/") or _DRIVE.match(path):
        raise ArchiveRefused(
            f"{source}: member {shown!r} has an absolute path (it would escape the extraction folder)"
        )
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveRefused(
            f"{source}: member {shown!r} leads out of the extraction folder ('..' in its path)"
        )
    return "/".join(parts)


class Budget:
    """Counts the bytes decompressed out of one archive and refuses it as soon as a limit is
    passed: the member count, the total unpacked size, and each member's output against its
    compressed size (the archive's own output against its file size for a compressed tar)."""

    def __init__(self, source: str, limits: ArchiveLimits) -> None:
        self.source = source
        self.limits = limits
        self.total = 0
        self.members = 0

    def count_members(self, count: int) -> None:
        """``count`` more members (files) are in the archive."""
        self.members += count
        if self.members > self.limits.max_members:
            raise ArchiveRefused(
                f"{self.source}: more than {self.limits.max_members:,} members "
                "(setting TAGLOOP_ARCHIVE_MAX_MEMBERS): refused as a possible archive bomb"
            )

    def grow(self, name: str, size: int) -> None:
        """``size`` more bytes unpacked (or declared) for member ``name``."""
        self.total += size
        if self.total > self.limits.max_total_bytes:
            raise ArchiveRefused(
                f"{self.source}: member {name} takes the unpacked size over "
                f"{self.limits.max_total_bytes:,} bytes (setting TAGLOOP_ARCHIVE_MAX_TOTAL_BYTES): "
                "refused as a possible archive bomb"
            )

    def ratio(self, name: str, produced: int, stored: int) -> None:
        """``produced`` bytes came out of ``stored`` compressed ones (over the floor only)."""
        if produced > RATIO_FLOOR_BYTES and produced > self.limits.max_ratio * max(stored, 1):
            raise ArchiveRefused(
                f"{self.source}: {name} unpacks to more than {self.limits.max_ratio:g} times its "
                f"compressed size ({stored:,} bytes) (setting TAGLOOP_ARCHIVE_MAX_RATIO): refused as a "
                "possible archive bomb"
            )
