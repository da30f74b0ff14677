"""The browser that tagloop's own browser tests and ``benchmarks/review_ui.py`` drive through
Playwright: Debian's Chromium, never one Playwright downloads (``make test`` installs it)."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
