"""People who sign in to the web UI: roles, argon2 password hashes, login throttling, sessions.

Roles rank ``reviewer < moderator < admin``: a role can do what the ones below it can.

**Sessions.** A login makes a random token (256 bits) that only the browser keeps (its
cookie); the database keeps its SHA-256, so a copy of the database holds no usable session.
Each session has a CSRF token its forms send back, and an absolute expiry
(:data:`SESSION_HOURS`). Every request looks its session up with its user, so disabling a user,
changing their password or logging out ends sessions at once (disabling and a new password
also delete every session of the user).

**What a failed login costs.** Logins are throttled twice, before any password is checked:

- per client address, in this process's memory (:class:`AddressLimiter`): a bucket of
  :data:`ADDRESS_BURST` failed attempts that refills one every :data:`ADDRESS_REFILL_SECONDS`;
  an address with an empty bucket is refused without a query or a hash;
- per user name: after :data:`FREE_FAILURES` failures in a row, the name is locked for 2 s,
  then 4, 8, ... up to :data:`LOCK_MAX_SECONDS` (``users.failed_logins`` and ``locked_until``,
  so every server process sees the lock); a locked name is refused without a hash.

A name that does not exist gets the same treatment (its failures are counted in memory) and
its password is checked against a fixed dummy hash, so neither the answer, nor the lock, nor
the time taken tells whether a name exists. At most :data:`VERIFY_SLOTS` argon2 checks run at
once (each needs 64 MiB), so a flood of logins queues instead of exhausting memory.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from tagloop.errors import AlreadyExists, InvalidRequest, NotFound
from tagloop.storage.database import Database
from tagloop.storage.tables import UserRow, utcnow
from tagloop.storage.users import UserRepository

ROLES = ("reviewer", "moderator", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}
NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,62}")
"""User names: lower case (an access key id, also a reviewer identity, is upper case)."""
MIN_PASSWORD = 8
MAX_PASSWORD = 1_024
SESSION_HOURS = 12
TOUCH_SECONDS = 60  # last_seen is written at most this often per session
FREE_FAILURES = 5
LOCK_BASE_SECONDS = 2
LOCK_MAX_SECONDS = 900
ADDRESS_BURST = 20
ADDRESS_REFILL_SECONDS = 30.0
REMEMBERED = 10_000  # addresses and unknown names kept in memory (least recently used go)
VERIFY_SLOTS = 2
FIRST_ADMIN = "admin"
WRONG = "wrong user name or password"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_user_name(name: str) -> str:
    if not NAME.fullmatch(name):
        shown = repr(name) if len(name) <= 100 else f"{name[:20]!r}... ({len(name):,} characters)"
        raise InvalidRequest(
            f"invalid user name {shown}: use 1-63 lower-case letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in RANK:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD:,} characters")
    return password


def lock_seconds(failures: int) -> int:
    """How long a name is locked after ``failures`` failed logins in a row (0: not locked)."""
    if failures < FREE_FAILURES:
        return 0
    return int(min(LOCK_BASE_SECONDS * 2 ** min(failures - FREE_FAILURES, 20), LOCK_MAX_SECONDS))


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    disabled: bool = False

    def allows(self, role: str) -> bool:
        """Whether this user's role is ``role`` or above it."""
        return not self.disabled and RANK[self.role] >= RANK[role]


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser, as a request sees it (never the token itself)."""

    user: User
    csrf_token: str
    expires_at: datetime
    digest: str


@dataclass(frozen=True)
class Login:
    """What a login attempt gave: a session and its token (the cookie's value), or why not:
    ``message`` for the person, and ``retry_after`` seconds when throttled."""

    session: WebSession | None = None
    token: str | None = None
    message: str | None = None
    retry_after: int | None = None


def summary(row: UserRow) -> dict[str, Any]:
    locked = row.locked_until is not None and row.locked_until > utcnow()
    return {
        "name": row.name,
        "role": row.role,
        "disabled": row.disabled_at is not None,
        "created_at": row.created_at.isoformat(),
        "last_login_at": row.last_login_at.isoformat() if row.last_login_at else None,
        "locked_until": row.locked_until.isoformat() if locked and row.locked_until else None,
    }


class AddressLimiter:
    """Failed logins per client address, in memory: a token bucket of ``burst`` attempts that
    refills one every ``refill`` seconds. Bounded: the least recently seen addresses go first."""

    def __init__(self, burst: int = ADDRESS_BURST, refill: float = ADDRESS_REFILL_SECONDS) -> None:
        self.burst = burst
        self.refill = refill
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when
        self._lock = threading.Lock()

    def _tokens(self, address: str, now: float) -> float:
        tokens, when = self._buckets.get(address, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - when) / self.refill)

    def wait(self, address: str) -> float:
        """Seconds before ``address`` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(address, now)
        return 0.0 if tokens >= 1 else (1 - tokens) * self.refill

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._buckets[address] = (max(0.0, self._tokens(address, now) - 1), now)
            self._buckets.move_to_end(address)
            while len(self._buckets) > REMEMBERED:
                self._buckets.popitem(last=False)


class UserService:
    def __init__(self, database: Database, hasher: PasswordHasher | None = None) -> None:
        self.database = database
        self.hasher = hasher or PasswordHasher()
        self.addresses = AddressLimiter()
        self._unknown: OrderedDict[str, tuple[int, float]] = OrderedDict()  # failures, locked until
        self._lock = threading.Lock()
        self._verifying = threading.BoundedSemaphore(VERIFY_SLOTS)
        self._dummy: str | None = None

    # -- managing users (CLI, admins) -------------------------------------------------------

    def create(self, name: str, role: str, password: str) -> dict[str, Any]:
        check_user_name(name)
        check_role(role)
        hashed = self.hasher.hash(check_password(password))
        try:
            with self.database.transaction() as session:
                users = UserRepository(session)
                if users.by_name(name) is not None:
                    raise AlreadyExists(f"user {name!r} exists already")
                return summary(users.add(name=name, role=role, password_hash=hashed, failed_logins=0))
        except IntegrityError as exc:  # created by someone else meanwhile
            raise AlreadyExists(f"user {name!r} exists already") from exc

    def list(self) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            return [summary(row) for row in UserRepository(session).list()]

    def has_users(self) -> bool:
        with self.database.reading() as session:
            return UserRepository(session).any()

    def _change(self, name: str, **values: Any) -> dict[str, Any]:
        with self.database.transaction() as session:
            users = UserRepository(session)
            row = users.by_name(name, for_update=True)
            if row is None:
                raise NotFound(f"no user {name!r}")
            for field, value in values.items():
                setattr(row, field, value)
            if values.get("disabled_at") or "password_hash" in values:
                users.delete_sessions_of(row.id)  # every browser of theirs is signed out now
            session.flush()
            return summary(row)

    def disable(self, name: str) -> dict[str, Any]:
        """Disable a user: every session of theirs ends now, and they cannot log in."""
        return self._change(name, disabled_at=utcnow())

    def enable(self, name: str) -> dict[str, Any]:
        return self._change(name, disabled_at=None, failed_logins=0, locked_until=None)

    def set_password(self, name: str, password: str) -> dict[str, Any]:
        """A new password (which also ends the user's sessions and lifts a lock)."""
        hashed = self.hasher.hash(check_password(password))
        return self._change(name, password_hash=hashed, failed_logins=0, locked_until=None)

    def set_role(self, name: str, role: str) -> dict[str, Any]:
        return self._change(name, role=check_role(role))

    def ensure_first_admin(self, password: str | None = None) -> dict[str, Any] | None:
        """When there is no user at all, create the admin ``admin`` with ``password`` (or a
        generated one, returned once); None when users exist already."""
        if self.has_users():
            return None
        generated = password is None
        chosen = password if password is not None else secrets.token_urlsafe(15)
        try:
            created = self.create(FIRST_ADMIN, "admin", chosen)
        except AlreadyExists:  # another process made it first
            return None
        return created | {"password": chosen, "generated": generated}

    # -- logging in and out ------------------------------------------------------------------

    def _verify(self, hashed: str, password: str) -> bool:
        with self._verifying:
            try:
                return self.hasher.verify(hashed, password)
            except (VerificationError, InvalidHashError):
                return False

    def _dummy_verify(self, password: str) -> None:
        """As long as checking a real user's password: nothing tells an unknown name apart."""
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        self._verify(self._dummy, password)

    def _unknown_locked(self, name: str, now: float) -> float:
        with self._lock:
            _, until = self._unknown.get(name, (0, 0.0))
        return max(0.0, until - now)

    def _unknown_failed(self, name: str, now: float) -> None:
        with self._lock:
            failures = self._unknown.get(name, (0, 0.0))[0] + 1
            self._unknown[name] = (failures, now + lock_seconds(failures))
            self._unknown.move_to_end(name)
            while len(self._unknown) > REMEMBERED:
                self._unknown.popitem(last=False)

    @staticmethod
    def _throttled(seconds: float) -> Login:
        wait = max(1, int(seconds + 0.999))
        return Login(message=f"too many failed logins: try again in {wait} s", retry_after=wait)

    def login(self, name: str, password: str, address: str) -> Login:
        """Check a name and password from a client ``address``; a session when they match.
        Blocking (argon2): call it off the event loop."""
        wait = self.addresses.wait(address)
        if wait > 0:
            return self._throttled(wait)
        name = name.strip().lower()
        now = utcnow()
        row = None
        if NAME.fullmatch(name) and MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            with self.database.reading() as session:
                row = UserRepository(session).by_name(name)
        if row is None:
            locked = self._unknown_locked(name, time.monotonic())
            if locked > 0:
                return self._throttled(locked)
            self._dummy_verify(password[:MAX_PASSWORD])
            self._unknown_failed(name, time.monotonic())
            self.addresses.failed(address)
            return Login(message=WRONG)
        if row.locked_until is not None and row.locked_until > now:
            return self._throttled((row.locked_until - now).total_seconds())
        if not self._verify(row.password_hash, password):
            self._failed(name)
            self.addresses.failed(address)
            return Login(message=WRONG)
        if row.disabled_at is not None:
            return Login(message="this account is disabled: ask an administrator")
        return self._signed_in(row, password)

    def _failed(self, name: str) -> None:
        with self.database.transaction() as session:
            row = UserRepository(session).by_name(name, for_update=True)
            if row is None:
                return
            row.failed_logins = (row.failed_logins or 0) + 1
            seconds = lock_seconds(row.failed_logins)
            if seconds:
                row.locked_until = utcnow() + timedelta(seconds=seconds)

    def _signed_in(self, row: UserRow, password: str) -> Login:
        token = secrets.token_urlsafe(32)
        digest = token_digest(token)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + timedelta(hours=SESSION_HOURS)
        rehash = self.hasher.check_needs_rehash(row.password_hash)
        with self.database.transaction() as session:
            users = UserRepository(session)
            current = users.by_name(row.name, for_update=True)
            if current is None or current.disabled_at is not None:
                return Login(message=WRONG)
            current.failed_logins = 0
            current.locked_until = None
            current.last_login_at = now
            if rehash:
                current.password_hash = self.hasher.hash(password)
            users.delete_expired_sessions(now)
            users.add_session(
                token_sha256=digest, user_id=current.id, csrf_token=csrf, expires_at=expires, last_seen=now
            )
            user = User(current.id, current.name, current.role)
        return Login(session=WebSession(user, csrf, expires, digest), token=token)

    def session(self, token: str | None) -> WebSession | None:
        """The live session of a cookie's token: None when unknown, expired, or its user is
        disabled. Looked up on every request (no cache), so an ended session ends at once."""
        if not token or len(token) > 128:
            return None
        digest = token_digest(token)
        now = utcnow()
        with self.database.reading() as session:
            found = UserRepository(session).session_with_user(digest)
        if found is None:
            return None
        row, user = found
        if row.expires_at <= now or user.disabled_at is not None:
            return None
        if (now - row.last_seen).total_seconds() > TOUCH_SECONDS:
            with self.database.transaction() as session:
                UserRepository(session).touch_session(digest, now)
        return WebSession(User(user.id, user.name, user.role), row.csrf_token, row.expires_at, digest)

    def logout(self, token: str | None) -> None:
        if token and len(token) <= 128:
            with self.database.transaction() as session:
                UserRepository(session).delete_session(token_digest(token))
