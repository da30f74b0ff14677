"""The artifact store on a local folder: atomic writes, recorded hashes, clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tagloop.errors import ArtifactCorrupt, ArtifactMissing
from tagloop.storage.artifacts import ArtifactStore


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` (hidden temporary files included), relative, sorted."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root) -> ArtifactStore:
    return ArtifactStore(str(root))


def test_write_records_hash_and_size_and_reads_back(store, root):
    stored = store.write_bytes("models/1/7/model.npz", b"model bytes")
    assert stored.path == str(root / "models" / "1" / "7" / "model.npz")
    assert stored.sha256 == hashlib.sha256(b"model bytes").hexdigest()
    assert stored.size == len(b"model bytes")
    assert Path(stored.path).read_bytes() == b"model bytes"
    assert store.read_bytes(stored.path, stored.sha256) == b"model bytes"
    assert store.read_bytes(stored.path) == b"model bytes"
    assert store.exists(stored.path)
    empty = store.write_bytes("empty.bin", b"")
    assert (empty.size, empty.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert store.read_bytes(empty.path, empty.sha256) == b""
    assert files_under(root) == ["empty.bin", "models/1/7/model.npz"]  # no temporary files left


def test_an_overwrite_replaces_the_file_whole(store, root):
    first = store.write_bytes("models/1/model.npz", b"first" * 1_000)
    inode = Path(first.path).stat().st_ino
    with open(first.path, "rb") as reader:  # a reader that opened the old file keeps it whole
        second = store.write_bytes("models/1/model.npz", b"second version")
        assert reader.read() == b"first" * 1_000
    assert second.path == first.path
    assert Path(second.path).stat().st_ino != inode  # a new file renamed over, not rewritten in place
    assert second.sha256 == hashlib.sha256(b"second version").hexdigest()
    assert second.size == len(b"second version")
    assert store.read_bytes(second.path, second.sha256) == b"second version"
    with pytest.raises(ArtifactCorrupt):
        store.read_bytes(second.path, first.sha256)
    assert files_under(root) == ["models/1/model.npz"]


def test_a_write_under_a_file_fails_and_leaves_everything_else(store, root):
    stored = store.write_bytes("a/model.npz", b"good")
    (root / "b").write_text("a file where a folder should be")
    with pytest.raises(OSError):
        store.write_bytes("b/model.npz", b"never")
    with pytest.raises(OSError):
        store.write_bytes("b/deeper/model.npz", b"never")
    assert (root / "b").read_text() == "a file where a folder should be"
    assert store.read_bytes(stored.path, stored.sha256) == b"good"
    assert files_under(root) == ["a/model.npz", "b"]


def test_a_write_failing_after_the_temporary_file_exists_leaves_no_trace(store, root):
    """The bytes are written, but the final rename fails (the target is a folder)."""
    (root / "m" / "model.npz").mkdir(parents=True)
    (root / "m" / "model.npz" / "inside").write_bytes(b"kept")
    with pytest.raises(IsADirectoryError):
        store.write_bytes("m/model.npz", b"new bytes")
    assert files_under(root) == ["m/model.npz/inside"]
    assert (root / "m" / "model.npz" / "inside").read_bytes() == b"kept"


def test_a_write_failing_midway_keeps_the_old_file(store, root):
    """Writing the temporary file itself fails: the previous artifact stays, no temp file left."""
    stored = store.write_bytes("m/model.npz", b"old model")
    with pytest.raises(TypeError):
        store.write_bytes("m/model.npz", "not bytes")  # type: ignore[arg-type]
    assert store.read_bytes(stored.path, stored.sha256) == b"old model"
    assert files_under(root) == ["m/model.npz"]


def test_tampered_truncated_and_missing_files_are_reported(store, root):
    """The path is in the error's ``location`` (for the server's log), never in its message,
    which may reach API callers."""
    stored = store.write_bytes("m.npz", b"model bytes")
    (root / "m.npz").write_bytes(b"model bytez")
    with pytest.raises(ArtifactCorrupt, match="SHA-256") as caught:
        store.read_bytes(stored.path, stored.sha256)
    assert caught.value.location == stored.path and str(root) not in caught.value.message
    (root / "m.npz").write_bytes(b"model")
    with pytest.raises(ArtifactCorrupt) as caught:
        store.read_bytes(stored.path, stored.sha256)
    assert caught.value.location == stored.path and "m.npz" not in caught.value.message
    assert store.read_bytes(stored.path) == b"model"  # no hash given: nothing to check
    (root / "m.npz").unlink()
    assert not store.exists(stored.path)
    with pytest.raises(ArtifactMissing, match="missing") as caught:
        store.read_bytes(stored.path, stored.sha256)
    assert caught.value.location == stored.path and str(root) not in caught.value.message
    with pytest.raises(ArtifactMissing):
        store.read_bytes(store.path("never/written.npz"))


def test_urls_and_keys_are_normalized(tmp_path):
    plain = ArtifactStore(str(tmp_path / "s") + "/")
    as_url = ArtifactStore(f"file://{tmp_path / 's'}")
    assert plain.is_local and as_url.is_local
    assert plain.path("/a/b.bin") == plain.path("a/b.bin") == str(tmp_path / "s" / "a" / "b.bin")
    stored = as_url.write_bytes("/a/b.bin", b"x")
    assert stored.path == plain.path("a/b.bin")
    assert plain.read_bytes(stored.path, stored.sha256) == b"x"


def test_delete_prefix(store, root):
    store.write_bytes("job/part-0.jsonl", b"{}")
    store.write_bytes("job/part-1.jsonl", b"{}")
    store.write_bytes("jobs-other/keep.jsonl", b"{}")
    store.delete_prefix("job")
    assert files_under(root) == ["jobs-other/keep.jsonl"]
    store.delete_prefix("job")  # nothing left: no error
    store.delete_prefix("")
    assert not root.exists() or files_under(root) == []
