"""A scratch PostgreSQL database for a benchmark run: created empty, dropped afterwards.

The server is ``TAGLOOP_BENCH_POSTGRES_URL`` (default the local test server,
``postgresql://postgres@127.0.0.1:5432/test``); the benchmarks import this module as their
neighbour (``python benchmarks/<name>.py`` puts this folder first on ``sys.path``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

SERVER = os.environ.get("TAGLOOP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def scratch_postgres(prefix: str = "tagloop_bench") -> Iterator[str]:
    """The URL of a new, empty database on the benchmark server, dropped (forcibly) on exit."""
    base = make_url(SERVER)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
