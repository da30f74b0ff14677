"""The web UI through the real app: a TestClient per person, users with each role."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.settings import Settings

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # argon2id, cheaper for tests
PASSWORD = "correct horse"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:2000]
    return found.group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD, next: str | None = None):
    """Log in as a browser does (the login page, then its form); the POST's response."""
    page = client.get("/login")
    form = {"csrf": csrf_of(page.text), "name": name, "password": password}
    if next is not None:
        form["next"] = next
    return client.post("/login", data=form, follow_redirects=False)


@pytest.fixture
def web_app(tmp_path):
    """The server's app (auth on) with users ana (reviewer), mo (moderator), ad (admin)."""
    app = create_app(Settings(data_dir=tmp_path / "data"), start_workers=False)
    users = app.state.tagloop.users
    users.hasher = FAST
    for name, role in (("ana", "reviewer"), ("mo", "moderator"), ("ad", "admin")):
        users.create(name, role, PASSWORD)
    yield app
    app.state.tagloop.close()


@pytest.fixture
def browser(web_app) -> Iterator[Callable[..., TestClient]]:
    """``browser(name=None)``: a new client (its own cookies), logged in as ``name`` if given."""
    clients: list[TestClient] = []

    def make(name: str | None = None, **options) -> TestClient:
        client = TestClient(web_app, **options)  # no lifespan: pages need no background threads
        clients.append(client)
        if name is not None:
            assert log_in(client, name).status_code == 303
        return client

    yield make
    for client in clients:
        client.close()


ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # screenshots (gitignored)

# the browser tests' `chromium` fixture (one per module) is in tests/conftest.py
