"""The first web UI admin that `tagloop serve` creates (demo.ensure_first_admin_user)."""

from __future__ import annotations

import json
import stat

from tagloop.demo import ensure_first_admin_user

from .conftest import FAST


def test_a_generated_password_is_shown_once_or_kept_in_a_private_file(make_tagloop):
    tagloop = make_tagloop()
    tagloop.users.hasher = FAST
    created = ensure_first_admin_user(tagloop, save=True)
    assert (created["name"], created["role"], created["generated"]) == ("admin", "admin", True)
    path = tagloop.settings.data_dir / "admin-password.json"
    assert json.loads(path.read_text()) == {"name": "admin", "password": created["password"]}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_first_admin_user(tagloop, save=True) is None  # idempotent: users exist
    assert tagloop.users.login("admin", created["password"], "127.0.0.1").session is not None


def test_the_password_can_be_given_and_a_server_database_needs_it(make_tagloop, postgres_db, tmp_path):
    given = make_tagloop(admin_password="from the environment", data_dir=tmp_path / "a")
    given.users.hasher = FAST
    created = ensure_first_admin_user(given, save=True)
    assert created["generated"] is False and "file" not in created
    assert not (given.settings.data_dir / "admin-password.json").exists()
    assert given.users.login("admin", "from the environment", "127.0.0.1").session is not None
    server = make_tagloop(database_url=postgres_db, data_dir=tmp_path / "b")
    assert ensure_first_admin_user(server, save=False) is None  # `tagloop users create` there
    assert server.users.list() == []
