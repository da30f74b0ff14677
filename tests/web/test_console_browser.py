"""The console in a real browser (Debian's Chromium through Playwright) against a live server
with its job workers running, on a seeded database: every page at 1280 px and 390 px wide
with its key content, no console error, no failed request, no request leaving 127.0.0.1 and
nothing wider than the phone's screen; an upload with a bad row shows that row's error; a stop
button stops a running job; a reviewer cannot open admin pages. Screenshots go to
tests/artifacts/ (kept out of git)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from tagloop.api.server import create_app
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask
from tagloop.errors import Stopped
from tagloop.jobs.port import JobContext, JobKindBase
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.events import EventRepository
from tagloop.storage.repositories import ClassifierRepository

from .conftest import ARTIFACTS, FAST, PASSWORD, Visit

SLOW_JOB = "console-test-slow"


class SlowJob(JobKindBase):
    """A job that reports progress until it is asked to stop (the runner's real stop path)."""

    kind = SLOW_JOB

    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        step = 0
        while not context.should_stop():
            step += 1
            context.progress(min(0.9, step / 400), f"step {step}")
            time.sleep(0.05)
        raise Stopped("stopped on request")


@dataclass
class Live:
    base: str
    tagloop: Any


@pytest.fixture(scope="module")
def live(tmp_path_factory, serve_in_thread, tickets) -> Iterator[Live]:
    """A live server (workers on) with an admin (ad) and a reviewer (ana); ``desk`` trained
    twice, served by a following endpoint, drifting, with review tasks; ``empty``, untrained."""
    folder = tmp_path_factory.mktemp("console")
    app = create_app(Settings(data_dir=folder / "data"), start_workers=True)
    tagloop = app.state.tagloop
    tagloop.queue.register(SlowJob())
    tagloop.users.hasher = FAST
    tagloop.users.create("ad", "admin", PASSWORD)
    tagloop.users.create("ana", "reviewer", PASSWORD)
    data = folder / "tickets.csv"
    data.write_text("".join(f'{label},"{text.replace(chr(34), "")}"\n' for label, text in tickets))
    tagloop.training.train(TrainRequest("desk", str(data)))
    tagloop.training.train(TrainRequest("desk", str(data)))
    tagloop.endpoints.create("desk-live", "desk")
    tagloop.loops.promote("desk", "v1")
    tagloop.loops.promote("desk", "v2")
    tagloop.iterations.run("desk")  # a turn of the loop: challenger v3 against the champion
    with tagloop.database.transaction() as session:
        desk = ClassifierRepository(session).get("desk").id
        ClassifierRepository(session).add("empty", Mode.MULTI_LABEL.value, "|")
        EventRepository(session).add("drift.detected", {}, classifier_id=desk, endpoint="desk-live")
    prediction = {"labels": ["NETWORK", "EMAIL"], "scores": [0.55, 0.45]}
    tagloop.review.add_tasks(
        [
            NewTask(
                text=text,
                mode=Mode.MULTI_CLASS,
                choices=("NETWORK", "EMAIL"),
                reason="low_confidence",
                priority=1.0,
                prediction=prediction,
                uncertainty=0.45,
                classifier_id=desk,
            )
            for _, text in tickets[:3]
        ]
    )
    with serve_in_thread(app) as port:
        yield Live(f"http://127.0.0.1:{port}", tagloop)
    tagloop.close()


class Console(Visit):
    """A visit that also notes every failed request and every answer of 400 or more."""

    def __init__(self, chromium, base: str, width: int = 1280, height: int = 900) -> None:
        super().__init__(chromium, base, width, height)
        self.expected_status: set[str] = set()
        self.page.on("response", self._answered)

    def _answered(self, response) -> None:
        if response.status >= 400 and urlsplit(response.url).path not in self.expected_status:
            self.failed.append(f"{response.url} {response.status}")

    def sign_in(self, name: str) -> None:
        self.page.goto("/login")
        self.page.fill("#name", name)
        self.page.fill("#password", PASSWORD)
        with self.page.expect_navigation():
            self.page.keyboard.press("Enter")
        assert urlsplit(self.page.url).path == "/review"

    def fits(self) -> None:
        """Nothing on the page is wider than the window (tables scroll inside their box)."""
        widths = self.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], (self.page.url, widths)

    def close(self) -> None:
        super().close()
        assert self.failed == [], f"failed requests: {self.failed}"


def _wait_for(condition, what: str, seconds: float = 60.0) -> None:
    """Poll ``condition`` until it holds (a deadline only so a broken run ends)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


PAGES = [
    ("classifiers", "/console/classifiers", '[data-classifier="desk"] [data-testid="drift"]'),
    ("classifier", "/console/classifiers/desk", '[data-testid="versions"] [data-version="v3"]'),
    ("classifier-empty", "/console/classifiers/empty", '[data-testid="no-versions"]'),
    ("version", "/console/classifiers/desk/versions/v2", '[data-testid="confusion"] td.diag a'),
    (
        "iterations",
        "/console/classifiers/desk/iterations",
        '[data-testid="iterations"] [data-iteration] .reason',
    ),
    ("iterations-empty", "/console/classifiers/empty/iterations", '[data-testid="no-iterations"]'),
    ("jobs", "/console/jobs", '[data-testid="jobs"] [data-status="COMPLETED"]'),
    ("upload", "/console/upload", "#file"),
]


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_every_console_page_at_both_widths(chromium, live, width, height):
    visit = Console(chromium, live.base, width, height)
    visit.sign_in("ad")
    page = visit.page
    for name, path, selector in PAGES:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        page.wait_for_selector(selector)
        page.wait_for_load_state("load")
        visit.fits()
        visit.screenshot(f"console-{name}-{width}")
    page.goto("/console/classifiers/desk/versions/v2")
    features = page.locator('[data-testid="features"] [data-label]')  # strongest features per label
    assert features.count() == len(live.tagloop.catalog.version("desk", "v2")["labels"])
    assert features.nth(0).locator("li").count() == 10
    features.nth(0).screenshot(path=str(ARTIFACTS / f"console-version-features-{width}.png"))
    for image in page.query_selector_all("main img"):  # every plot drawn, with its alt text
        assert image.get_attribute("alt")
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image)
    page.click('[data-testid="confusion"] td.off a >> nth=0')  # a cell: its test documents
    page.wait_for_selector('[data-testid="cell-count"]')
    assert page.query_selector_all('[data-testid="documents"] li')
    visit.fits()
    visit.screenshot(f"console-cell-{width}")
    visit.close()


def test_an_upload_with_a_bad_row_shows_that_rows_error(chromium, live, tickets):
    visit = Console(chromium, live.base)
    visit.sign_in("ad")
    page = visit.page
    page.goto("/console/upload")
    rows = [f'{label},"{text.replace(chr(34), "")}"' for label, text in tickets[:30]]
    rows.insert(2, "BILLING,")  # line 3: no text
    page.set_input_files(
        "#file", {"name": "tickets.csv", "mimeType": "text/csv", "buffer": "\n".join(rows).encode()}
    )
    page.fill("#classifier", "uploaded")
    page.click('[data-testid="upload"]')
    page.wait_for_selector('[data-testid="rejected"]')
    assert page.text_content('[data-testid="rejected"] li').startswith("tickets.csv:3: ")
    assert "1 row rejected" in page.text_content('[data-testid="problem"]')
    assert page.input_value("#classifier") == "uploaded"
    visit.screenshot("console-upload-rejected-1280")
    assert "uploaded" not in [found["name"] for found in live.tagloop.catalog.classifiers()]
    visit.close()


def test_a_stop_button_stops_a_running_job(chromium, live):
    tagloop = live.tagloop
    with tagloop.database.transaction() as session:
        job_id = tagloop.queue.enqueue(session, SLOW_JOB, {})
    _wait_for(lambda: tagloop.jobs.show(job_id)["status"] == "IN_PROGRESS", "the job to start")
    visit = Console(chromium, live.base, 390, 844)
    visit.sign_in("ad")
    page = visit.page
    page.goto(f"/console/jobs/{job_id}")
    first = page.text_content('[data-testid="job-message"]')
    page.wait_for_function(  # htmx replaces the progress while the job runs
        "(first) => document.querySelector('[data-testid=job-message]').textContent !== first", arg=first
    )
    visit.screenshot("console-job-running-390")
    page.click('[data-testid="stop"]')
    page.wait_for_selector('[data-testid="job-status"]:text("STOPPED")')
    assert tagloop.jobs.show(job_id)["status"] == "STOPPED"
    assert page.is_visible('[data-testid="retry"]')
    visit.screenshot("console-job-stopped-390")
    visit.close()


def test_a_reviewer_cannot_open_admin_pages(chromium, live):
    visit = Console(chromium, live.base, 390, 844)
    visit.sign_in("ana")
    page = visit.page
    page.goto("/console/classifiers")
    assert 'href="/console/jobs"' not in page.content() and 'href="/console/upload"' not in page.content()
    assert "Promote" not in page.content()
    for path in ("/console/jobs", "/console/upload", "/console/jobs/rows"):
        response = visit.context.request.get(path, max_redirects=0)
        assert response.status == 403 and "for the role admin" in response.text(), path
    csrf = page.get_attribute('input[name="csrf"]', "value")
    refused = visit.context.request.post(
        "/console/classifiers/desk/promote", form={"csrf": csrf, "version": "v1"}
    )
    assert refused.status == 403 and live.tagloop.loops.champion("desk")["version"] == "v2"
    visit.screenshot("console-reviewer-classifiers-390")
    visit.close()
