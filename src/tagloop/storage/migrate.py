"""Alembic migrations run from code (``tagloop db upgrade``, automatic on the embedded DB)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tagloop.errors import ConfigurationError
from tagloop.storage.database import Database
from tagloop.storage.private import open_private

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(_config(database)).get_current_head()


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision now current."""
    config = _config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return current_revision(database)


def ensure_current(database: Database, auto_upgrade: bool) -> None:
    """Upgrade an out-of-date schema, or explain how to when automatic upgrades are off."""
    current, head = current_revision(database), head_revision(database)
    if current == head:
        return
    if auto_upgrade:
        with _upgrade_lock(database):
            if current_revision(database) != head:  # another process may have upgraded meanwhile
                upgrade(database)
        return
    raise ConfigurationError(
        f"the database schema is at {current or 'nothing'} and this tagloop needs {head}: "
        "run `tagloop db upgrade`"
    )


@contextlib.contextmanager
def _upgrade_lock(database: Database) -> Iterator[None]:
    """Serialize automatic upgrades of one embedded database file across processes
    (several ``tagloop`` commands or server workers starting at once on a new data dir)."""
    path = database.engine.url.database
    if database.dialect != "sqlite" or not path or path == ":memory:":
        yield
        return
    with os.fdopen(open_private(f"{path}.upgrade-lock", os.O_RDWR | os.O_APPEND), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
