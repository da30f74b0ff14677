"""The composition root: where settings send the database and the artifacts."""

from __future__ import annotations

import multiprocessing
import os
import stat

import pytest

from tagloop.app import Tagloop
from tagloop.errors import ConfigurationError
from tagloop.jobs.local import LocalJobQueue
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage import migrate


def test_the_embedded_default_lives_in_the_data_dir(tmp_path):
    tagloop = Tagloop(Settings(data_dir=tmp_path / "data"))
    try:
        assert tagloop.database.is_embedded
        assert (tmp_path / "data" / "tagloop.db").exists()
        assert migrate.current_revision(tagloop.database) == migrate.head_revision(tagloop.database)
        assert tagloop.artifacts.is_local
        assert tagloop.artifacts.root == str((tmp_path / "data" / "artifacts").resolve())
        assert isinstance(tagloop.queue, LocalJobQueue)
    finally:
        tagloop.close()


def test_settings_come_from_tagloop_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("TAGLOOP_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.setenv("TAGLOOP_ARTIFACTS_URL", f"{tmp_path / 'models'}/")
    monkeypatch.setenv("TAGLOOP_MAX_TEXT_BYTES", "123")
    settings = Settings()
    assert settings.data_dir == tmp_path / "env-data"
    assert settings.resolved_artifacts_url == str(tmp_path / "models")
    assert settings.max_text_bytes == 123
    assert Settings(max_text_bytes=7).max_text_bytes == 7  # explicit values (CLI flags) win


def test_an_unsupported_database_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="use sqlite or postgresql"):
        Tagloop(Settings(data_dir=tmp_path, database_url="mysql://root@localhost/tagloop"))


def _open_and_close(data_dir: str) -> str:
    tagloop = Tagloop(Settings(data_dir=data_dir))
    try:
        return str(migrate.current_revision(tagloop.database))
    finally:
        tagloop.close()


def test_processes_starting_at_once_on_a_new_data_dir_upgrade_it_once(tmp_path):
    """Several commands (or server workers) started together on a new data dir all open it."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        revisions = pool.map(_open_and_close, [str(tmp_path / "data")] * 6)
    tagloop = Tagloop(Settings(data_dir=tmp_path / "data"))
    try:
        assert set(revisions) == {migrate.head_revision(tagloop.database)}
    finally:
        tagloop.close()


def test_a_fresh_data_dir_is_readable_by_its_user_only(tmp_path, tickets, write_csv):
    """The data dir holds training texts, predictions and keys: 0700 folders, 0600 files,
    whatever the umask (here the usual 022, which made them 0755 and 0644)."""
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    previous = os.umask(0o022)
    try:
        tagloop = Tagloop(Settings(data_dir=tmp_path / "nested" / "data"))
        try:
            tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
            tagloop.keys.create("app", "classify")
            wal_and_shm = [tmp_path / "nested" / "data" / f"tagloop.db-{end}" for end in ("wal", "shm")]
            assert all(path.exists() for path in wal_and_shm)  # checked while the database is open
            modes = {
                str(path.relative_to(tmp_path)): stat.S_IMODE(path.stat().st_mode)
                for path in [tmp_path / "nested", *sorted((tmp_path / "nested").rglob("*"))]
            }
        finally:
            tagloop.close()
    finally:
        os.umask(previous)
    assert {"nested/data/tagloop.db", "nested/data/secret.key", "nested/data/artifacts"} <= set(modes)
    assert any(name.endswith("model.npz") for name in modes)
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not loose, f"readable by others: {loose}"
