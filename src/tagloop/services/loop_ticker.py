"""The loop ticker: a daemon thread that runs the learning loop's periodic work.

``tagloop serve`` and ``tagloop worker`` start one (``TAGLOOP_LOOP_TICK_SECONDS``, default
30; 0: off). Each part (a callable: iteration triggers, review-queue refills, prediction
sampling, drift monitoring) is called once per interval in turn; an exception is logged and
never stops the thread or the other parts. Parts must be safe when several processes tick
the same database (conditional updates, one iteration per loop at a time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class LoopTicker:
    def __init__(self, parts: list[Callable[[], None]], interval_seconds: float) -> None:
        self.parts = list(parts)
        self.interval_seconds = interval_seconds
        self.ticks = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, part: Callable[[], None]) -> None:
        self.parts.append(part)

    def tick(self) -> None:
        """Run every part once (errors logged)."""
        for part in list(self.parts):
            if self._stopping.is_set():
                return
            try:
                part()
            except Exception:
                log.exception("loop tick: %s failed", getattr(part, "__qualname__", part))
        self.ticks += 1

    def start(self) -> None:
        """Start the thread (no-op when the interval is 0 or it runs already)."""
        if self.interval_seconds <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="tagloop-loop-ticker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_seconds):
            self.tick()

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
