"""Logging predictions without slowing requests: a background thread writes them in batches.

Each logged prediction gets its id at once (returned to the caller, for feedback); rows are
written within about ``flush_seconds``. ``close`` writes what is pending.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Any

from tagloop.storage.database import Database
from tagloop.storage.repositories import PredictionRepository
from tagloop.storage.tables import utcnow

log = logging.getLogger(__name__)


class PredictionLog:
    def __init__(self, database: Database, enabled: bool = True, flush_seconds: float = 0.25) -> None:
        self.database = database
        self.enabled = enabled
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=100_000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, endpoint: str, version_id: int, text: str, result: dict[str, Any]) -> str | None:
        """Queue one prediction for writing; returns its id (None when logging is off)."""
        if not self.enabled:
            return None
        prediction_id = uuid.uuid4().hex
        entries = result.get("Classes") or result.get("Labels") or []
        row = {
            "id": prediction_id,
            "endpoint": endpoint,
            "version_id": version_id,
            "text": text,
            "result": result,
            "top_score": entries[0]["Score"] if entries else None,
            "created_at": utcnow(),
        }
        self._ensure_writer()
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            log.warning("prediction log queue full: prediction %s not logged", prediction_id)
        return prediction_id

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._write, name="tagloop-prediction-log", daemon=True
                )
                self._thread.start()

    def _write(self) -> None:
        closing = False
        while not closing:
            batch: list[dict[str, Any]] = []
            try:
                item = self._queue.get(timeout=self.flush_seconds)
            except queue.Empty:
                continue
            while True:
                if item is None:
                    closing = True
                else:
                    batch.append(item)
                if closing or len(batch) >= 1_000:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    with self.database.transaction() as session:
                        PredictionRepository(session).add_many(batch)
                except Exception:
                    log.exception("writing %d logged predictions failed", len(batch))

    def close(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=10)
