"""API keys: created with a scope, shown once, stored hashed (Bearer) and sealed (SigV4)."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tagloop.domain.names import check_name
from tagloop.errors import InvalidRequest, NotFound
from tagloop.services.secrets import SecretBox
from tagloop.storage.database import Database
from tagloop.storage.repositories import ApiKeyRepository, one_match
from tagloop.storage.tables import ApiKeyRow, utcnow

SCOPES = ("classify", "review", "admin")
CACHE_SECONDS = 5.0
CACHE_ENTRIES = 4_096
"""Most lookups kept in memory: misses are cached too (a client retrying a wrong key costs no
query), so the cache is bounded, the least recently used answer going first: a stream of
made-up keys cannot grow the server's memory."""
_ALPHABET = string.ascii_uppercase + string.digits
ACCESS_KEY_ID = re.compile(r"TL[A-Z0-9]{18}")
"""The shape of every access key id tagloop makes; anything else is unknown without a lookup."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an access key and its scope."""

    access_key_id: str
    name: str
    scope: str

    def allows(self, scope: str) -> bool:
        return self.scope == "admin" or self.scope == scope


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key_summary(row: ApiKeyRow) -> dict[str, Any]:
    return {
        "access_key_id": row.access_key_id,
        "name": row.name,
        "scope": row.scope,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


class KeyService:
    """Keys are looked up per request through a short cache, so a revocation takes effect
    in every process within ``CACHE_SECONDS``."""

    def __init__(self, database: Database, box: SecretBox) -> None:
        self.database = database
        self.box = box
        self._cache: OrderedDict[str, tuple[float, Principal | None, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, name: str, scope: str) -> dict[str, Any]:
        check_name("key", name)  # as for every other name: no NUL, no megabytes, no spaces
        if scope not in SCOPES:
            raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}")
        access_key_id = "TL" + "".join(secrets.choice(_ALPHABET) for _ in range(18))
        secret = secrets.token_urlsafe(30)
        with self.database.transaction() as session:
            row = ApiKeyRepository(session).add(
                access_key_id=access_key_id,
                name=name,
                scope=scope,
                secret_sha256=_digest(secret),
                secret_encrypted=self.box.seal(secret),
            )
            return key_summary(row) | {"secret": secret}

    def list(self) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            return [key_summary(row) for row in ApiKeyRepository(session).list()]

    def resolve(self, prefix: str) -> str:
        """The access key id that is ``prefix`` or, failing that, the one that starts with it;
        several matches are refused, naming them."""
        with self.database.reading() as session:
            keys = ApiKeyRepository(session)
            if keys.by_access_key(prefix) is not None:
                return prefix
            return one_match("access key", prefix, keys.ids_starting(prefix))

    def revoke(self, access_key_id: str) -> dict[str, Any]:
        with self.database.transaction() as session:
            row = ApiKeyRepository(session).by_access_key(access_key_id)
            if row is None:
                raise NotFound(f"no access key {access_key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            session.flush()
            summary = key_summary(row)
        with self._lock:
            self._cache.clear()
        return summary

    def by_bearer(self, secret: str) -> Principal | None:
        """The key whose secret this is, if it exists and is not revoked."""
        digest = _digest(secret)
        principal, _ = self._lookup("bearer:" + digest, lambda repo: repo.by_secret_hash(digest))
        return principal

    def cached_bearer(self, secret: str) -> tuple[bool, Principal | None]:
        """``(True, key or None)`` when the answer is in memory and fresh, else ``(False, None)``:
        lets the server answer from memory in its event loop and query the database off it."""
        hit = self._fresh("bearer:" + _digest(secret))
        return (True, hit[0]) if hit is not None else (False, None)

    def by_access_key(self, access_key_id: str) -> tuple[Principal | None, str | None]:
        """The key and its secret (for checking a SigV4 signature), if active."""
        if ACCESS_KEY_ID.fullmatch(access_key_id) is None:
            return None, None  # not one of ours: no query, nothing cached
        return self._lookup("akid:" + access_key_id, lambda repo: repo.by_access_key(access_key_id))

    def cached_access_key(self, access_key_id: str) -> tuple[bool, Principal | None]:
        """As :meth:`cached_bearer`, for an access key id (its secret stays out of it); an id
        not of tagloop's shape is known to be unknown."""
        if ACCESS_KEY_ID.fullmatch(access_key_id) is None:
            return True, None
        hit = self._fresh("akid:" + access_key_id)
        return (True, hit[0]) if hit is not None else (False, None)

    def _fresh(self, cache_key: str) -> tuple[Principal | None, str | None] | None:
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None:
                self._cache.move_to_end(cache_key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1], hit[2]
        return None

    def _lookup(self, cache_key: str, find: Any) -> tuple[Principal | None, str | None]:
        hit = self._fresh(cache_key)
        if hit is not None:
            return hit
        now = time.monotonic()
        with self.database.reading() as session:
            row = find(ApiKeyRepository(session))
            principal = secret = None
            if row is not None and row.revoked_at is None:
                principal = Principal(row.access_key_id, row.name, row.scope)
                secret = self.box.open(row.secret_encrypted)
        with self._lock:
            self._cache[cache_key] = (now, principal, secret)
            self._cache.move_to_end(cache_key)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return principal, secret

    def cached_entries(self) -> int:
        """How many lookups this process keeps in memory (at most ``CACHE_ENTRIES``)."""
        with self._lock:
            return len(self._cache)
