"""Folders and files that only the server's own user may read.

The data dir holds training texts, logged predictions, API keys and the server key, so what
tagloop creates there is private whatever the umask: folders 0700, files 0600. SQLite gives
its ``-wal`` and ``-shm`` files the mode of the database file, so creating that file 0600 is
enough. Folders and files that already exist keep the mode they have.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: str | os.PathLike[str]) -> None:
    """Create ``path`` and each missing parent with mode 0700 (existing folders are left alone)."""
    folder = Path(path).absolute()
    missing: list[Path] = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for item in reversed(missing):
        try:
            item.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            if not item.is_dir():
                raise
        else:
            os.chmod(item, FOLDER_MODE)  # exactly 0700, whatever the umask took away or left


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open`` of a file that is created with mode 0600 (``O_CREAT`` is added)."""
    return os.open(path, flags | os.O_CREAT, FILE_MODE)


def touch_private(path: str | os.PathLike[str]) -> None:
    """Create an empty file with mode 0600 unless it exists (an existing file is not opened)."""
    if os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError):  # another process created it first
        os.close(open_private(path, os.O_WRONLY | os.O_EXCL))
