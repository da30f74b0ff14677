"""The server key that encrypts API secrets at rest (AWS SigV4 needs them back).

From ``TAGLOOP_SECRET_KEY`` when set (required when several machines share a database), else
from ``<data dir>/secret.key``, created on first use with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from tagloop.errors import ConfigurationError
from tagloop.storage.private import open_private, private_folder

KEY_FILE = "secret.key"


def _fernet_key(material: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(material.encode("utf-8")).digest())


def load_or_create_key(configured: str | None, data_dir: Path) -> Fernet:
    if configured:
        return Fernet(_fernet_key(configured))
    path = data_dir / KEY_FILE
    if not path.exists():
        private_folder(data_dir)
        try:
            descriptor = open_private(path, os.O_WRONLY | os.O_EXCL)
        except FileExistsError:
            pass  # another process created it first
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")
    return Fernet(_fernet_key(path.read_text().strip()))


class SecretBox:
    def __init__(self, fernet: Fernet) -> None:
        self.fernet = fernet

    def seal(self, secret: str) -> str:
        return self.fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self.fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ConfigurationError(
                "an API secret cannot be decrypted: TAGLOOP_SECRET_KEY is not the key it was stored with"
            ) from exc
