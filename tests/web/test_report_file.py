"""The HTML report `tagloop report C --html FILE` writes, opened in Debian's headless Chromium
offline with every request refused: all plots show, nothing is fetched, nothing a label or a
text holds runs as markup. Screenshots at 1280 and 390 px go to tests/artifacts/."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

from .conftest import ARTIFACTS

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]
EVIL = "<img src=x onerror=\"document.title='pwned'\">"
"""A label (and text) that would run if a report put it into the page as markup."""


@pytest.fixture(scope="module")
def reports(tmp_path_factory, tickets) -> dict[str, Path]:
    """Reports of `desk` (the demo tickets plus a label of markup): v2 alone, v1 against v2."""
    root = tmp_path_factory.mktemp("report-file")
    data = root / "tickets.csv"
    extra = [(EVIL, f"<script>document.title='pwned'</script> rogue tag number {i}") for i in range(24)]
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows([*tickets, *extra])
    tagloop = Tagloop(Settings(data_dir=root / "data"))
    try:
        tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
        tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    finally:
        tagloop.close()
    files = {"single": root / "single.html", "compare": root / "compare.html"}
    for args, target in (([], files["single"]), (["--version", "v1", "--compare", "v2"], files["compare"])):
        done = subprocess.run(
            [*COMMAND, "--data-dir", str(root / "data"), "report", "desk", *args, "--html", str(target)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "" and done.stderr.strip() == f"report written to {target}"
    return files


class Offline:
    """A page of an offline browser context: every request but the file's own is refused and
    noted, console and page errors are noted."""

    def __init__(self, chromium, width: int) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.context = chromium.new_context(viewport={"width": width, "height": 900}, offline=True)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def _route(self, route) -> None:
        self.requests.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    def open(self, path: Path) -> None:
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")


def _plots_shown(page) -> dict[str, int]:
    """Per plot key, how many of its SVGs are drawn with a real size and a title."""
    shown: dict[str, int] = {}
    for figure in page.locator("figure.plot").all():
        svg = figure.locator("svg")
        box = svg.bounding_box()
        assert svg.is_visible() and box is not None and box["width"] > 150 and box["height"] > 100
        assert svg.locator("title").text_content().strip()  # the alt text
        assert svg.locator("text").count() > 5  # text kept as text: labels, ticks
        key = figure.get_attribute("data-plot")
        shown[key] = shown.get(key, 0) + 1
    return shown


@pytest.mark.parametrize("width", [1280, 390])
def test_the_report_shows_every_plot_offline(chromium, reports, width):
    visit = Offline(chromium, width)
    try:
        visit.open(reports["single"])
        page = visit.page
        assert _plots_shown(page) == {"per_label": 1, "confusion": 1, "reliability": 1, "scores": 1}
        assert visit.requests == [reports["single"].as_uri()]
        assert visit.errors == [] and visit.dialogs == []
        assert page.title() == "tagloop report: desk v2"  # no markup ran
        assert page.locator("h2").first.inner_text().startswith("desk v2")
        assert page.locator("table.per-label tbody tr").count() == 7
        assert page.get_by_text(EVIL, exact=True).count() >= 1  # the label shown as written
        assert page.locator("img").count() == 0
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width  # nothing wider than the screen (tables scroll in their box)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-{width}.png"), full_page=True)
    finally:
        visit.context.close()


def test_two_versions_side_by_side_and_a_sortable_table(chromium, reports):
    visit = Offline(chromium, 1280)
    try:
        visit.open(reports["compare"])
        page = visit.page
        shown = _plots_shown(page)
        assert shown == {"compare": 1, "per_label": 2, "confusion": 2, "reliability": 2, "scores": 2}
        assert visit.requests == [reports["compare"].as_uri()] and visit.errors == []
        assert [v.get_attribute("data-version") for v in page.locator("section.version").all()] == [
            "v1",
            "v2",
        ]
        assert page.locator("table.compare tbody tr").count() == 8
        first, second = page.locator("section.version").all()
        assert first.bounding_box()["y"] == second.bounding_box()["y"]  # side by side
        table = first.locator("table.per-label")
        f1 = table.locator("th", has_text="F1")
        f1.click()
        values = [float(v) for v in table.locator("tbody tr td:nth-child(4)").all_inner_texts()]
        assert values == sorted(values)
        f1.click()
        values = [float(v) for v in table.locator("tbody tr td:nth-child(4)").all_inner_texts()]
        assert values == sorted(values, reverse=True)
        page.screenshot(path=str(ARTIFACTS / "report-compare-1280.png"), full_page=True)
    finally:
        visit.context.close()
