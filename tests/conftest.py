"""Shared fixtures: settings on a temporary data dir, real SQLite and real PostgreSQL.

PostgreSQL tests talk to the server at ``TAGLOOP_TEST_POSTGRES_URL`` (default: the local
server, trust auth). Each test session creates its own database and drops it at the end.
They never skip: a missing server is a failure, so CI cannot pass without it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tagloop.app import Tagloop
from tagloop.settings import Settings

POSTGRES_URL = os.environ.get("TAGLOOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on the test server, dropped afterwards."""
    base = make_url(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test session."""
    with scratch_database("tagloop_test") as url:
        yield url


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (no schema at all), dropped at the end."""
    with scratch_database("tagloop_fresh") as url:
        yield url


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database URL whose tagloop tables are empty at the start of each test."""
    from tagloop.storage import migrate
    from tagloop.storage.database import Database
    from tagloop.storage.tables import Base

    database = Database(postgres_url)
    migrate.upgrade(database)
    with database.engine.begin() as connection:
        names = ", ".join(table.name for table in Base.metadata.sorted_tables)
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    database.dispose()
    yield postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test once on the embedded SQLite file and once on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tagloop.db'}"
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded default settings on a temporary data dir (SQLite + local artifacts)."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def make_tagloop(tmp_path: Path) -> Iterator[Callable[..., Tagloop]]:
    """Build Tagloop instances (closed at the end); keyword arguments override settings."""
    made: list[Tagloop] = []

    def build(**overrides: object) -> Tagloop:
        values: dict[str, object] = {"data_dir": tmp_path / "data"}
        values.update(overrides)
        instance = Tagloop(Settings(**values))  # type: ignore[arg-type]
        if not instance.database.is_embedded:
            from tagloop.storage import migrate

            migrate.upgrade(instance.database)
        made.append(instance)
        return instance

    yield build
    for instance in made:
        instance.close()


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write rows ``[[label, text], ...]`` as a Comprehend CSV file; returns its path."""

    def write(rows: list[list[str]], name: str = "data.csv") -> Path:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        path = tmp_path / name
        path.write_text(buffer.getvalue(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def multi_label_csv(write_csv: Callable[..., Path]) -> Path:
    """A small multi-label training file (labels NET, HW, both), written as ``ml.csv``."""
    rows = []
    for i in range(40):
        rows.append(["NET|HW", f"the router {i} and the laptop dock {i} both fail"])
        rows.append(["NET", f"the vpn tunnel {i} drops"])
        rows.append(["HW", f"the keyboard {i} is broken"])
    return write_csv(rows, "ml.csv")


@pytest.fixture(scope="session")
def tickets() -> list[tuple[str, str]]:
    """The shipped service-desk demo tickets as (label, text) pairs."""
    from tagloop.demo import demo_data_path

    with open(demo_data_path(), encoding="utf-8", newline="") as handle:
        return [(row[0], row[1]) for row in csv.reader(handle)]


@pytest.fixture
def tickets_csv(tickets: list[tuple[str, str]], write_csv: Callable[..., Path]) -> Path:
    """The demo tickets written as a Comprehend CSV file."""
    return write_csv([list(row) for row in tickets], "tickets.csv")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skipped test is a failure: every service the suite needs runs there."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def procrastinate_db(postgres_db: str) -> str:
    """``postgres_db`` with Procrastinate's tables installed and emptied."""
    from tagloop.jobs.procrastinate_queue import ProcrastinateJobQueue
    from tagloop.storage.database import Database

    database = Database(postgres_db)
    ProcrastinateJobQueue(database).ensure_schema()
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "TRUNCATE procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE"
        )
    database.dispose()
    return postgres_db


@pytest.fixture(params=["local-sqlite", "local-postgresql", "procrastinate-postgresql"])
def job_backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings for each job queue adapter on each database it supports."""
    adapter, backend = request.param.split("-")
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'tagloop.db'}"
    elif adapter == "procrastinate":
        url = request.getfixturevalue("procrastinate_db")
    else:
        url = request.getfixturevalue("postgres_db")
    return {"database_url": url, "jobs": adapter}


def _free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _serving(app: object, port: int | None = None) -> Iterator[int]:
    import uvicorn

    port = port or _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """``free_port()``: a loopback port nothing listens on now."""
    return _free_port


@pytest.fixture(scope="session")
def serve_in_thread() -> Callable[..., object]:
    """``with serve_in_thread(app) as port:`` runs a real uvicorn server for an ASGI app on a
    free loopback port in a thread (for tests that need a socket: real clients, signatures)."""
    return _serving


def _add_newer_jobs(tagloop: Tagloop, count: int) -> None:
    from sqlalchemy import insert

    from tagloop.storage.tables import JobRow, utcnow

    rows = [
        dict(id=uuid.uuid4().hex, kind="other", status="COMPLETED", payload={}, created_at=utcnow())
        for _ in range(count)
    ]
    with tagloop.database.transaction() as session:
        session.execute(insert(JobRow), rows)


@pytest.fixture(scope="session")
def add_newer_jobs() -> Callable[[Tagloop, int], None]:
    """``add_newer_jobs(tagloop, count)``: ``count`` finished jobs of another kind, all newer
    than every job so far (to push a job past a listing's first page)."""
    return _add_newer_jobs


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One headless Chromium per test module: Debian's (``tagloop.web.browser``), never a
    downloaded one."""
    from playwright.sync_api import sync_playwright

    from tagloop.web.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


# ---- notifications (issue 15, notify): a real local HTTP receiver for webhooks ----------------
class _Receiver:
    """A loopback HTTP server that records every request (headers, raw body) and answers with
    the statuses of ``answers`` in turn (then 200); ``redirect_to`` answers 302 instead."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.answer_body = b"ok"
        self.redirect_to: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if receiver.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", str(len(receiver.answer_body)))
                self.end_headers()
                # the sender may stop reading (a long answer past its cap): its right
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(receiver.answer_body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # closing never waits for a client's idle connection
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def make_receiver() -> Callable[[], _Receiver]:
    """``make_receiver()``: a new receiver (the caller closes it), for wider-scoped fixtures."""
    return _Receiver


@pytest.fixture
def webhook_receiver() -> Iterator[_Receiver]:
    receiver = _Receiver()
    yield receiver
    receiver.close()


# ---- import profiles (issue 15, profiles) ----
ISSUE_PROJECTS = ("hadoop", "spark", "kafka")


def _issue_database(path: Path, project: str, rows: int, seed: int) -> None:
    """A SQLite file with a table ``issue(type, summary, description)`` as the recipe has:
    every second row a Bug, the others Improvement or Task."""
    import random
    import sqlite3

    rng = random.Random(seed)
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE issue (id INTEGER PRIMARY KEY, type TEXT, summary TEXT, description TEXT)"
    )
    connection.executemany(
        "INSERT INTO issue (type, summary, description) VALUES (?, ?, ?)",
        [
            (
                "Bug" if i % 2 == 0 else rng.choice(["Improvement", "Task"]),
                f"{project} {rng.choice(['crash', 'hang', 'leak', 'error'])} in module {rng.randint(1, 40)}",
                f"the {project} {rng.choice(['scheduler', 'reader', 'writer'])} fails when "
                f"{rng.choice(['starting', 'stopping', 'loading', 'saving'])} ({rng.randint(1, 999)})",
            )
            for i in range(rows)
        ],
    )
    connection.commit()
    connection.close()


@pytest.fixture
def issue_archive(tmp_path: Path) -> Callable[..., Path]:
    """``issue_archive(rows=40, projects=ISSUE_PROJECTS, name="issues.zip")``: the documented
    recipe's input, a zip of ``<project>.sqlite3.bz2`` files (``rows`` issues each, half Bugs)."""
    import bz2
    import zipfile

    def make(rows: int = 40, projects: tuple[str, ...] = ISSUE_PROJECTS, name: str = "issues.zip") -> Path:
        folder = tmp_path / f"dbs-{name}"
        folder.mkdir()
        target = tmp_path / name
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for seed, project in enumerate(projects):
                database = folder / f"{project}.sqlite3"
                _issue_database(database, project, rows, seed)
                archive.writestr(f"{project}.sqlite3.bz2", bz2.compress(database.read_bytes()))
        return target

    return make
