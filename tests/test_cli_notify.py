"""`tagloop notify ...` run as processes on a data folder: one JSON document on stdout with
--json, one-line errors on stderr, exit statuses; a test message and queued events reaching a
real local receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tagloop.app import Tagloop
from tagloop.domain.notifications import verify
from tagloop.settings import Settings
from tagloop.storage.events import EventRepository

SCRIPT = Path(sys.executable).parent / "tagloop"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tagloop.cli"]


def run(data_dir: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    done = subprocess.run(
        [*COMMAND, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=environment,
        input=stdin,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def test_notify_commands(tmp_path, webhook_receiver):
    data = tmp_path / "data"
    secret = "a-secret-from-stdin-0123"
    adding = ["notify", "add", "webhook", "team", webhook_receiver.url, "--event", "drift.*"]
    code, out, err = run(data, *adding, "--secret-stdin", "--json", stdin=secret + "\n")
    assert code == 0, err
    added = json.loads(out)
    assert (added["name"], added["events"], added["secret"]) == ("team", ["drift.*"], secret)
    code, out, err = run(data, "notify", "add", "email", "ops", "ops@example.com")
    assert code == 0 and "ops@example.com" in out

    code, out, err = run(data, "notify", "test", "team")
    assert code == 0 and out.strip() == "test message delivered to team (HTTP 200)", err
    [request] = webhook_receiver.requests
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert verify(secret, headers["x-tagloop-timestamp"], request["body"], headers["x-tagloop-signature"])
    code, out, err = run(data, "notify", "test", "ops")  # no SMTP server configured
    assert code == 1 and err.strip().startswith("error: test message to ops failed: no SMTP server")

    tagloop = Tagloop(Settings(data_dir=data))
    try:
        with tagloop.database.transaction() as session:
            EventRepository(session).add("drift.detected", {"endpoint": "desk-ep", "window": "2026-12-01"})
    finally:
        tagloop.close()
    code, out, err = run(data, "notify", "send", "--json")
    assert code == 0, err
    sent = json.loads(out)
    assert (sent["queued"], sent["attempts"]) == (2, 2)  # the drift event to both channels
    # the drift event: delivered to the webhook; the e-mail's first attempt failed, retried later
    assert sent["deliveries"] == {"pending": 1, "sending": 0, "delivered": 2, "failed": 1}
    code, out, err = run(data, "notify", "deliveries", "--failed", "--json")
    assert code == 0 and [(d["channel"], d["kind"]) for d in json.loads(out)] == [("ops", "notify.test")]
    code, out, err = run(data, "notify", "remove", "nobody")
    assert (code, out, err.strip()) == (1, "", "error: no notification channel 'nobody'")
