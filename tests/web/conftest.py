"""The web UI through the real app: a TestClient per person, users with each role."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

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


class Visit:
    """A browser context of one person: every request outside the server is aborted and
    noted, every console error and page error is noted, and every request that failed (see
    `failure_of`) is kept in ``failed`` for the pages that check it."""

    def __init__(self, chromium, base: str, width: int = 1280, height: int = 900) -> None:
        self.base = base
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.context = chromium.new_context(base_url=base, viewport={"width": width, "height": height})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("requestfailed", self._failed)

    def _failed(self, request) -> None:
        if (failure := failure_of(request)) is not None:
            self.failed.append(failure)

    def _route(self, route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "about", "blob") or f"{url.scheme}://{url.netloc}" == self.base:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def log_in(self, name: str) -> None:
        page = self.page
        page.goto("/")
        assert urlsplit(page.url).path == "/login"
        page.fill("#name", name)
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("#task")
        page.wait_for_load_state("load")  # its scripts too: a goto next must not abort them

    def task_id(self) -> str | None:
        return self.page.get_attribute("#task", "data-task")

    def press(self, key: str) -> None:
        """Press ``key`` and wait for the next task's fragment (a new one, or the same again)."""
        marker = self.page.evaluate(
            "() => { const t = document.getElementById('task'); t.dataset.old = '1'; }"
        )
        assert marker is None
        self.page.keyboard.press(key)
        self.page.wait_for_function("() => !document.getElementById('task').dataset.old")

    def value_of(self, selector: str) -> str:
        value = self.page.get_attribute(selector, "value")
        assert value
        return value

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.foreign == [], f"requests left 127.0.0.1: {self.foreign}"
        assert self.errors == [], f"console errors: {self.errors}"


def failure_of(request) -> str | None:
    """A failed request worth a test failing on; None for one the browser dropped itself.

    Leaving a page aborts its pending loads (``net::ERR_ABORTED``): that is the browser's doing,
    not the server's; an answer of 400 or more is caught on the response instead.
    """
    failure = request.failure or ""
    return None if "ERR_ABORTED" in failure else f"{request.url} {failure}"
