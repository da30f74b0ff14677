"""Web users (services/users.py): roles, argon2 hashes, sessions, login throttling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from tagloop.errors import AlreadyExists, InvalidRequest, NotFound
from tagloop.services import users as users_module
from tagloop.services.users import (
    FREE_FAILURES,
    WRONG,
    AddressLimiter,
    User,
    UserService,
    lock_seconds,
    token_digest,
)
from tagloop.storage.tables import UserRow, WebSessionRow, utcnow
from tagloop.storage.users import UserRepository

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # the same algorithm, cheaper


@pytest.fixture
def users(database_url, make_tagloop) -> UserService:
    tagloop = make_tagloop(database_url=database_url)
    return UserService(tagloop.database, FAST)


def test_roles_rank_reviewer_moderator_admin():
    reviewer, moderator, admin = (User(1, "a", role) for role in ("reviewer", "moderator", "admin"))
    assert reviewer.allows("reviewer") and not reviewer.allows("moderator") and not reviewer.allows("admin")
    assert moderator.allows("reviewer") and moderator.allows("moderator") and not moderator.allows("admin")
    assert admin.allows("admin") and admin.allows("reviewer")
    assert not User(1, "a", "admin", disabled=True).allows("reviewer")


def test_a_password_is_kept_as_an_argon2_hash_and_sessions_by_their_digest(users):
    users.create("ana", "reviewer", "correct horse")
    login = users.login("ana", "correct horse", "10.0.0.1")
    assert login.session is not None and login.token
    with users.database.reading() as session:
        row = session.query(UserRow).one()
        stored = session.query(WebSessionRow).one()
    assert row.password_hash.startswith("$argon2id$") and "correct horse" not in row.password_hash
    assert stored.token_sha256 == token_digest(login.token) != login.token
    assert users.session(login.token).user.name == "ana"
    assert users.session(login.token).csrf_token == login.session.csrf_token


def test_names_roles_and_passwords_are_checked(users):
    for name in ("", "Ana", "a b", "-x", "x" * 64, "TL" + "A" * 18):
        with pytest.raises(InvalidRequest):
            users.create(name, "reviewer", "long enough")
    with pytest.raises(InvalidRequest, match="role"):
        users.create("ana", "root", "long enough")
    with pytest.raises(InvalidRequest, match="8 to"):
        users.create("ana", "reviewer", "short")
    users.create("ana", "reviewer", "long enough")
    with pytest.raises(AlreadyExists):
        users.create("ana", "admin", "long enough")
    with pytest.raises(NotFound):
        users.disable("bob")


def test_wrong_and_unknown_logins_get_the_same_answer(users):
    users.create("ana", "reviewer", "correct horse")
    wrong = users.login("ana", "wrong horse", "10.0.0.1")
    unknown = users.login("nobody", "wrong horse", "10.0.0.2")
    assert wrong.session is None and unknown.session is None
    assert wrong.message == unknown.message == WRONG
    assert users.login("ANA ", "correct horse", "10.0.0.3").session is not None  # names are lower case


def test_a_name_is_locked_with_exponential_backoff_after_failures(users, monkeypatch):
    users.create("ana", "reviewer", "correct horse")
    assert [lock_seconds(n) for n in range(FREE_FAILURES + 4)] == [0] * FREE_FAILURES + [2, 4, 8, 16]
    assert lock_seconds(100) == users_module.LOCK_MAX_SECONDS
    verified = []
    real_verify = users._verify
    monkeypatch.setattr(users, "_verify", lambda *args: verified.append(1) or real_verify(*args))
    for attempt in range(FREE_FAILURES):
        assert users.login("ana", "wrong horse", f"10.0.1.{attempt}").message == WRONG
    throttled = users.login("ana", "correct horse", "10.0.2.1")  # right password, but locked
    assert throttled.session is None and throttled.retry_after is not None and throttled.retry_after <= 2
    assert len(verified) == FREE_FAILURES  # the locked attempt checked no password
    with users.database.transaction() as session:  # time passes
        row = UserRepository(session).by_name("ana")
        row.locked_until = utcnow() - timedelta(seconds=1)
    assert users.login("ana", "correct horse", "10.0.2.1").session is not None
    with users.database.reading() as session:
        row = UserRepository(session).by_name("ana")
        assert (row.failed_logins, row.locked_until) == (0, None)  # a success resets the count


def test_unknown_names_are_locked_like_known_ones(users):
    for attempt in range(FREE_FAILURES):
        assert users.login("nobody", "wrong horse", f"10.0.1.{attempt}").message == WRONG
    assert users.login("nobody", "wrong horse", "10.0.2.1").retry_after is not None


def test_one_address_is_limited_without_any_hash(users, monkeypatch):
    users.addresses = AddressLimiter(burst=3, refill=3600)
    verified = []
    monkeypatch.setattr(users, "_verify", lambda *args: verified.append(1) or False)
    for name in ("a1", "a2", "a3"):
        assert users.login(name, "wrong horse", "10.9.9.9").message == WRONG
    throttled = users.login("a4", "wrong horse", "10.9.9.9")
    assert throttled.retry_after is not None and len(verified) == 3
    assert users.login("a4", "wrong horse", "10.9.9.8").message == WRONG  # another address


def test_disabling_ends_every_session_at_once_and_enabling_allows_login(users):
    users.create("ana", "reviewer", "correct horse")
    first = users.login("ana", "correct horse", "10.0.0.1").token
    second = users.login("ana", "correct horse", "10.0.0.2").token
    assert users.session(first) and users.session(second)
    users.disable("ana")
    assert users.session(first) is None and users.session(second) is None
    refused = users.login("ana", "correct horse", "10.0.0.1")
    assert refused.session is None and "disabled" in refused.message
    assert users.login("ana", "wrong horse", "10.0.0.1").message == WRONG  # says nothing more
    users.enable("ana")
    assert users.session(first) is None  # ended for good
    assert users.login("ana", "correct horse", "10.0.0.1").session is not None


def test_a_disabled_users_live_session_row_is_refused(users):
    """Even a session row left behind (e.g. written by an older process) stops working."""
    users.create("ana", "reviewer", "correct horse")
    token = users.login("ana", "correct horse", "10.0.0.1").token
    with users.database.transaction() as session:
        UserRepository(session).by_name("ana").disabled_at = utcnow()
    assert users.session(token) is None


def test_a_new_password_ends_sessions(users):
    users.create("ana", "reviewer", "correct horse")
    token = users.login("ana", "correct horse", "10.0.0.1").token
    users.set_password("ana", "battery staple")
    assert users.session(token) is None
    assert users.login("ana", "correct horse", "10.0.0.1").session is None
    assert users.login("ana", "battery staple", "10.0.0.1").session is not None


def test_sessions_expire_and_logout_deletes_them(users):
    users.create("ana", "reviewer", "correct horse")
    token = users.login("ana", "correct horse", "10.0.0.1").token
    with users.database.transaction() as session:
        session.query(WebSessionRow).update({"expires_at": utcnow() - timedelta(seconds=1)})
    assert users.session(token) is None
    token = users.login("ana", "correct horse", "10.0.0.1").token  # also sweeps the expired one
    users.logout(token)
    assert users.session(token) is None
    with users.database.reading() as session:
        assert session.query(WebSessionRow).count() == 0
    for made_up in ("", "x", "y" * 5000, None):
        assert users.session(made_up) is None


def test_the_first_admin_is_created_once(users):
    created = users.ensure_first_admin()
    assert created["name"] == "admin" and created["role"] == "admin" and created["generated"]
    assert users.login("admin", created["password"], "10.0.0.1").session is not None
    assert users.ensure_first_admin("another password") is None  # idempotent
    assert [user["name"] for user in users.list()] == ["admin"]
