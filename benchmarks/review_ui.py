"""Review page: a reviewer answers ``--answers`` tasks with the keyboard alone in a real browser.

Measured by the page itself (``static/tagloop.js``, ``window.tagloopTimings``): from the key
press (``performance.now()`` in the keydown handler) to the next task's text painted (a timer
queued from the first animation frame after htmx swapped the fragment in). Target: p95 ≤ 150 ms.

Baseline in the same run: the same answer as a plain HTTP POST (``httpx``, the fragment the
page gets) from this process to the same server, i.e. the server and loopback part of the
page's figure. Debian's Chromium (``/usr/bin/chromium``) through Playwright, headless; the
server is tagloop's app under uvicorn in a thread, on SQLite in a temporary folder (or
``--database-url``).

    .venv/bin/python benchmarks/review_ui.py [--answers 200]
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from argon2 import PasswordHasher
from playwright.sync_api import sync_playwright

from tagloop.api.server import create_app
from tagloop.demo import demo_data_path
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask
from tagloop.settings import Settings
from tagloop.storage import migrate
from tagloop.storage.database import Database
from tagloop.web.browser import CHROMIUM, CHROMIUM_ARGS

LABELS = ("ACCESS", "BILLING", "EMAIL", "HARDWARE", "NETWORK", "SOFTWARE")
KEYS = ("1", "2", "Enter", "3", "4", "Enter", "5", "6")
PASSWORD = "benchmark password"


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, ordered[-1]


def tasks(count: int) -> list[NewTask]:
    with open(demo_data_path(), encoding="utf-8", newline="") as handle:
        texts = [row[1] for row in csv.reader(handle)]
    made = []
    for i in range(count):
        order = [LABELS[i % 6], *(label for label in LABELS if label != LABELS[i % 6])]
        prediction = {"labels": order, "scores": [0.41, 0.22, 0.14, 0.1, 0.08, 0.05]}
        text = texts[i % len(texts)]
        made.append(NewTask(text=text, mode=Mode.MULTI_CLASS, choices=LABELS, reason="low_confidence",
                            prediction=prediction, uncertainty=0.59, priority=float(count - i)))  # fmt: skip
    return made


def serve(app: object) -> tuple[uvicorn.Server, threading.Thread, int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, port


def browser_answers(base: str, answers: int, name: str) -> list[float]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        page = browser.new_page(base_url=base, viewport={"width": 1280, "height": 900})
        page.goto("/login")
        page.fill("#name", name)
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("#task[data-task]")
        for i in range(answers):
            shown = page.get_attribute("#task", "data-task")
            page.keyboard.press(KEYS[i % len(KEYS)])
            page.wait_for_function("id => document.getElementById('task').dataset.task !== id", arg=shown)
        page.wait_for_function("n => window.tagloopTimings.length >= n", arg=answers)
        timings = page.evaluate("() => window.tagloopTimings")
        browser.close()
    return [float(value) for value in timings]


def http_answers(base: str, answers: int, name: str) -> list[float]:
    """The same answers as plain POSTs with the page's headers: the server and loopback part."""
    with httpx.Client(base_url=base) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        client.post("/login", data={"csrf": token, "name": name, "password": PASSWORD})
        page = client.get("/review").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        headers = {"HX-Request": "true", "X-CSRF-Token": csrf}
        took = []
        for _ in range(answers):
            task_id = re.search(r'data-task="([^"]+)"', page).group(1)
            started = time.perf_counter()
            page = client.post(
                "/review/answer", data={"task_id": task_id, "label": "NETWORK"}, headers=headers
            ).text
            took.append((time.perf_counter() - started) * 1000)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty database (migrated here); default: SQLite in a temporary folder",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder) / "data", database_url=options.database_url)
        if options.database_url:  # a server database: its schema first, as `tagloop db upgrade` does
            database = Database(settings.resolved_database_url)
            migrate.upgrade(database)
            database.dispose()
        app = create_app(settings, start_workers=False)
        tagloop = app.state.tagloop
        tagloop.users.hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # login is not timed
        for name in ("page", "http"):
            tagloop.users.create(name, "reviewer", PASSWORD)
        tagloop.review.add_tasks(tasks(2 * options.answers + 20))
        server, thread, port = serve(app)
        base = f"http://127.0.0.1:{port}"
        try:
            page = browser_answers(base, options.answers, "page")
            http = http_answers(base, options.answers, "http")
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            tagloop.close()
    print(f"review page, {options.answers} keyboard answers ({tagloop.database.dialect}), milliseconds:")
    print(f"{'':44} {'p50':>7} {'p95':>7} {'max':>7}")
    for label, values in (
        ("page: key press -> next text painted", page),
        ("baseline: the same POST by httpx (server)", http),
    ):
        p50, p95, most = percentiles(values)
        print(f"{label:44} {p50:7.1f} {p95:7.1f} {most:7.1f}")
    p95 = percentiles(page)[1]
    print(f"target p95 <= 150 ms: {'met' if p95 <= 150 else 'NOT met'} ({p95:.1f} ms)")


if __name__ == "__main__":
    main()
