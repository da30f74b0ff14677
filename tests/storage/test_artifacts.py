"""The artifact store on a local folder: atomic writes, recorded hashes, clear errors."""

from __future__ import annotations

import hashlib

import pytest

from tagloop.errors import ArtifactCorrupt, NotFound
from tagloop.storage.artifacts import ArtifactStore


def test_write_is_atomic_and_hashed(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    first = store.write_bytes("models/1/model.npz", b"first")
    second = store.write_bytes("models/1/model.npz", b"second version")
    assert first.path == second.path
    assert second.sha256 == hashlib.sha256(b"second version").hexdigest()
    assert second.size == len(b"second version")
    assert store.read_bytes(second.path, second.sha256) == b"second version"
    assert [p.name for p in (tmp_path / "store" / "models" / "1").iterdir()] == ["model.npz"]  # no temp files


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    stored = store.write_bytes("a/model.npz", b"good")
    (tmp_path / "store" / "b").write_text("a file where a folder should be")
    with pytest.raises(OSError):
        store.write_bytes("b/model.npz", b"never")
    assert store.read_bytes(stored.path, stored.sha256) == b"good"
    assert not list((tmp_path / "store" / "a").glob(".*.tmp"))


def test_tampering_and_missing_files_are_reported(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    stored = store.write_bytes("m.npz", b"model bytes")
    (tmp_path / "store" / "m.npz").write_bytes(b"model bytez")
    with pytest.raises(ArtifactCorrupt, match="SHA-256"):
        store.read_bytes(stored.path, stored.sha256)
    with pytest.raises(NotFound):
        store.read_bytes(store.path("missing.npz"))


def test_delete_prefix(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    store.write_bytes("job/part-0.jsonl", b"{}")
    store.write_bytes("job/part-1.jsonl", b"{}")
    store.delete_prefix("job")
    assert not (tmp_path / "store" / "job").exists()
    store.delete_prefix("job")  # nothing left: no error
