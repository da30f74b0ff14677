"""The console pages of part B in a real browser (Debian's Chromium through Playwright) on a
seeded live server: predictions (filter, detail with its trail), review statistics with their
plots, endpoints, keys, users and inboxes, at 1280 and 390 px wide. Every request is watched (none may
leave 127.0.0.1, none may fail), no console error; screenshots go to tests/artifacts/ (not in
git). A reviewer cannot open the admin pages, nor the moderators' ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tagloop.api.server import create_app
from tagloop.settings import Settings

from .conftest import FAST, PASSWORD, Visit
from .console2_data import Seeded, seed

WIDTHS = (1280, 390)


@dataclass
class Live:
    base: str
    tagloop: object
    data: Seeded


@pytest.fixture(scope="module")
def live(tmp_path_factory, serve_in_thread, tickets) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("console2-browser")
    app = create_app(Settings(data_dir=folder / "data"), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.users.hasher = FAST
    for name, role in (("ana", "reviewer"), ("mo", "moderator"), ("ad", "admin")):
        tagloop.users.create(name, role, PASSWORD)
    data = seed(tagloop, folder, tickets)
    with serve_in_thread(app) as port:
        yield Live(f"http://127.0.0.1:{port}", tagloop, data)
    tagloop.close()


class Watched(Visit):
    """A Visit that also fails on any request that failed or was answered with an error."""

    def __init__(self, chromium, base: str, width: int) -> None:
        super().__init__(chromium, base, width=width, height=900)
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} {r.status}"))

    def images_shown(self) -> int:
        """How many <img> the page has, checking each one loaded and drew something."""
        script = "all => all.map(i => [i.complete, i.naturalWidth, i.alt])"
        sizes = self.page.eval_on_selector_all("img", script)
        for complete, width, alt in sizes:
            assert complete and width > 0 and alt, sizes
        return len(sizes)

    def fits(self) -> None:
        """Nothing wider than the window (no sideways scrolling of the page)."""
        overflow = self.page.evaluate(
            "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - window.innerWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than the window"

    def close(self) -> None:
        assert self.failed == [], f"failed requests: {self.failed}"
        super().close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_moderator_reads_predictions_and_review_statistics(chromium, live, width):
    visit = Watched(chromium, live.base, width)
    visit.log_in("mo")
    page = visit.page
    page.goto("/predictions")
    assert page.locator("[data-prediction]").count() == len(live.data.ids)
    assert page.locator(f'[data-prediction="{live.data.routed}"] .c2-badge.routed').count() == 1
    visit.fits()
    visit.screenshot(f"c2-predictions-{width}")
    page.select_option('select[name="feedback"]', "yes")
    page.click("text=Filter")
    page.wait_for_url("**/predictions?*feedback=yes*")
    assert page.locator("[data-prediction]").count() == 1
    page.click(f'[data-prediction="{live.data.feedback}"] a.c2-label')
    page.wait_for_url(f"**/predictions/{live.data.feedback}")
    assert "it is Excel" in page.text_content('[data-testid="feedback"]')
    assert page.text_content('[data-testid="final"]') == "SOFTWARE"
    visit.fits()
    visit.screenshot(f"c2-prediction-feedback-{width}")
    page.goto(f"/predictions/{live.data.routed}")
    assert "ana" in page.text_content('[data-testid="trail"]')
    visit.screenshot(f"c2-prediction-routed-{width}")
    page.goto("/review/stats?classifier=desk&days=14")
    assert page.text_content('[data-testid="queue-figures"]').count("5") >= 1
    assert visit.images_shown() == 3  # queue, answers, agreement
    visit.fits()
    visit.screenshot(f"c2-review-stats-{width}")
    page.goto("/review/stats")
    assert page.is_visible('[data-testid="no-agreement"]')
    visit.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_admin_manages_endpoints_keys_and_users(chromium, live, width):
    visit = Watched(chromium, live.base, width)
    visit.log_in("ad")
    page = visit.page
    page.goto("/admin/endpoints")
    assert page.text_content('[data-endpoint="desk"] [data-testid="serves"]').startswith("version ")
    visit.fits()
    visit.screenshot(f"c2-endpoints-{width}")
    page.goto("/admin/keys")
    page.fill('[data-testid="create-key"] input[name="name"]', f"app-{width}")
    page.select_option('[data-testid="create-key"] select[name="scope"]', "review")
    page.click("text=Create key")
    page.wait_for_selector('[data-testid="created"]')
    page.wait_for_load_state("load")  # its scripts too: the next click must not abort them
    secret = page.text_content('[data-testid="new-secret"]')
    key_id = page.text_content('[data-testid="new-id"]')
    assert live.tagloop.keys.by_bearer(secret).scope == "review"
    visit.fits()
    visit.screenshot(f"c2-keys-created-{width}")
    page.click(f'[data-key="{key_id}"] button')
    page.wait_for_selector('[data-testid="notice"]')
    page.wait_for_load_state("load")  # its scripts too: the next click must not abort them
    assert live.tagloop.keys.by_bearer(secret) is None
    page.goto("/admin")
    page.fill('[data-testid="create-user"] input[name="name"]', f"rev{width}")
    page.fill('[data-testid="create-user"] input[name="password"]', PASSWORD)
    page.click("text=Add user")
    page.wait_for_selector(f"text=rev{width}")
    page.wait_for_load_state("load")  # its scripts too: the next click must not abort them
    visit.fits()
    visit.screenshot(f"c2-admin-users-{width}")
    visit.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_admin_watches_an_inbox_scans_it_and_disables_it(chromium, live, tmp_path, tickets, width):
    """A real inbox on a temporary folder: one good file, one bad; Scan now picks both up, their
    jobs run (no workers here: the test runs them), the page shows where each went and why."""
    drop = tmp_path / f"drop-{width}"
    drop.mkdir()
    name = f"drop{width}"
    live.tagloop.inbox.add(name, str(drop))
    (drop / "tickets.csv").write_text(
        "".join(f'{label},"{text.replace(chr(34), "")}"\n' for label, text in tickets)
    )
    (drop / "tickets.csv.ready").touch()
    (drop / "broken.csv").write_text("NETWORK,\n,no label\n")
    (drop / "broken.csv.ready").touch()
    visit = Watched(chromium, live.base, width)
    visit.log_in("ad")
    page = visit.page
    page.click("nav >> text=Inboxes")
    page.wait_for_url("**/admin/inboxes")
    inbox = f'[data-inbox="{name}"]'
    assert page.is_visible(f'{inbox} [data-testid="no-files"]')
    page.click(f'{inbox} [data-testid="scan"]')
    page.wait_for_selector('[data-testid="notice"]')
    page.wait_for_load_state("load")  # its scripts too: the next navigation must not abort them
    assert "2 picked up" in page.text_content('[data-testid="notice"]')
    assert live.tagloop.queue.run_until_idle() == 2
    page.reload()
    assert page.text_content(f'{inbox} [data-file="tickets.csv"] [data-testid="state"]') == "processed"
    assert (
        page.text_content(f'{inbox} [data-file="tickets.csv"] [data-testid="moved-to"]')
        == "processed/tickets.csv"
    )
    assert page.text_content(f'{inbox} [data-file="tickets.csv"] [data-testid="deployment"]').startswith(
        "created"
    )
    assert "rejected" in page.text_content(f'{inbox} [data-file="broken.csv"] [data-testid="file-error"]')
    assert page.is_visible(f'{inbox} [data-testid="last-error"]')
    visit.fits()
    visit.screenshot(f"c2-inboxes-{width}")
    page.click(f'{inbox} [data-testid="toggle"]')
    page.wait_for_selector('[data-testid="notice"]')
    page.wait_for_load_state("load")
    assert page.text_content(f'{inbox} [data-testid="enabled"]') == "disabled"
    assert live.tagloop.inbox.status(name)["enabled"] is False
    visit.fits()
    visit.screenshot(f"c2-inboxes-disabled-{width}")
    page.click(f'{inbox} [data-testid="version"] >> nth=0')  # the version the file became
    page.wait_for_url(f"**/console/classifiers/{name}/versions/v1")
    page.wait_for_selector('[data-testid="features"] [data-label] li')
    page.wait_for_load_state("load")
    visit.fits()
    visit.close()


def test_a_reviewer_cannot_open_admin_or_moderator_pages(chromium, live):
    visit = Visit(chromium, live.base, width=390)
    visit.log_in("ana")
    page = visit.page
    nav = page.text_content("nav")
    assert "Endpoints" not in nav and "Keys" not in nav and "Predictions" not in nav
    assert "Inboxes" not in nav
    for path in (
        "/admin/endpoints",
        "/admin/keys",
        "/admin/inboxes",
        "/admin",
        "/predictions",
        "/review/stats",
    ):
        response = page.goto(path)
        assert response.status == 403, path
        assert page.text_content("h1").endswith("Not allowed")
    visit.screenshot("c2-reviewer-refused-390")
    # the browser reports each refused page load as a console error: those and only those
    visit.errors = [error for error in visit.errors if "403" not in error]
    visit.close()
