"""Artifact store on any fsspec URL (local folder by default, ``s3://`` when scaled out).

Writes are atomic: on a local disk the bytes go to a temporary name in the same folder,
are flushed to disk and then renamed over the target; on object stores a single PUT
already replaces the object whole. A crash therefore never leaves half a model behind.
Local folders are created 0700 and files 0600: models hold what was learnt from training
texts.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tagloop.errors import ArtifactCorrupt, ArtifactMissing
from tagloop.storage.private import open_private, private_folder


@dataclass(frozen=True)
class StoredArtifact:
    path: str
    sha256: str
    size: int


class ArtifactStore:
    def __init__(self, url: str, **storage_options: object) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def path(self, key: str) -> str:
        return f"{self.root}/{key.lstrip('/')}"

    def write_bytes(self, key: str, data: bytes) -> StoredArtifact:
        target = self.path(key)
        parent = target.rsplit("/", 1)[0]
        if self.is_local:
            private_folder(parent)  # 0700 folders, 0600 files: models hold the training vocabulary
            temporary = f"{parent}/.{target.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
            try:
                with os.fdopen(open_private(temporary, os.O_WRONLY | os.O_EXCL), "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, target)
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
        else:
            self.fs.makedirs(parent, exist_ok=True)
            self.fs.pipe_file(target, data)
        return StoredArtifact(target, hashlib.sha256(data).hexdigest(), len(data))

    def read_bytes(self, path: str, expected_sha256: str | None = None) -> bytes:
        """Read an artifact by the path :meth:`write_bytes` returned, checking its hash.

        The errors' messages leave the path out (they may reach API callers); it is in their
        ``location``, for the server's log."""
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError as exc:
            raise ArtifactMissing("the stored file is missing from the artifact store", path) from exc
        if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise ArtifactCorrupt(
                "the stored file does not match the SHA-256 recorded when it was written", path
            )
        return data

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def delete_prefix(self, key: str) -> None:
        """Remove ``key`` and everything under it (the whole store for ``""``)."""
        target = self.path(key).rstrip("/") or self.root
        if self.fs.exists(target):
            self.fs.rm(target, recursive=True)
