"""Private folders and files: 0700 and 0600 whatever the umask; what exists is left alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.private import private_folder, touch_private


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_missing_folders_are_created_0700(tmp_path, mask):
    with umask(mask):
        private_folder(tmp_path / "a" / "b" / "c")
        private_folder(tmp_path / "a" / "b" / "c")  # again: nothing to do
    assert [mode(tmp_path / "a"), mode(tmp_path / "a" / "b"), mode(tmp_path / "a" / "b" / "c")] == [0o700] * 3


def test_existing_folders_and_files_keep_their_mode_and_content(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    (shared / "kept.db").write_bytes(b"content")
    os.chmod(shared / "kept.db", 0o644)
    private_folder(shared)
    touch_private(shared / "kept.db")
    touch_private(shared / "new.db")
    assert (mode(shared), mode(shared / "kept.db"), mode(shared / "new.db")) == (0o755, 0o644, 0o600)
    assert (shared / "kept.db").read_bytes() == b"content"


def test_a_file_in_the_way_is_an_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError):
        private_folder(tmp_path / "file" / "below")


def test_local_artifacts_are_private(tmp_path):
    with umask(0o000):
        stored = ArtifactStore(str(tmp_path / "store")).write_bytes("models/desk/v1/model.npz", b"weights")
    assert mode(stored.path) == 0o600
    assert [mode(tmp_path / "store"), mode(tmp_path / "store" / "models" / "desk" / "v1")] == [0o700] * 2
