"""The loop ticker: every part once per tick, a failing part logged and never stopping the others
or the thread; interval 0 is off."""

from __future__ import annotations

import logging
import threading
import time

from tagloop.services.loop_ticker import LoopTicker


def test_a_failing_part_is_logged_and_the_others_run(caplog):
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("boom")

    ticker = LoopTicker([broken, lambda: calls.append("fine")], interval_seconds=30)
    with caplog.at_level(logging.ERROR):
        ticker.tick()
        ticker.tick()
    assert calls == ["broken", "fine", "broken", "fine"] and ticker.ticks == 2
    assert "boom" in caplog.text


def test_the_thread_keeps_ticking_and_stops():
    ticked = threading.Event()
    count = {"n": 0}

    def part() -> None:
        count["n"] += 1
        if count["n"] >= 3:
            ticked.set()
        raise ValueError("every time")

    ticker = LoopTicker([part], interval_seconds=0.01)
    ticker.start()
    try:
        assert ticked.wait(30), "the ticker stopped ticking after a failing part"
    finally:
        ticker.stop()
    seen = count["n"]
    time.sleep(0.05)
    assert count["n"] == seen  # stopped


def test_interval_zero_starts_nothing():
    ticker = LoopTicker([lambda: None], interval_seconds=0)
    ticker.start()
    assert ticker._thread is None
