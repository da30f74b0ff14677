"""Logging predictions without slowing requests: rows are written in batches, off the request.

Each logged prediction gets its id at once (returned to the caller, for feedback); rows are
written within about ``flush_seconds``. ``close`` writes what is pending.

The writer is a thread of this process by default. A server moves it to a process of its
own (:meth:`PredictionLog.use_process`): encoding and inserting a row costs about 50 µs of
Python, which in a thread would hold the serving process's GIL (and stall its event loop)
for as long. Ids are time-ordered (UUID version 7), so rows are appended to the end of the
primary key index instead of landing at random places in it.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import queue
import random
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from tagloop.domain import comprehend
from tagloop.domain.predictions import Prediction
from tagloop.storage.database import Database
from tagloop.storage.repositories import PredictionRepository

log = logging.getLogger(__name__)
BATCH_ROWS = 1_000
QUEUE_ROWS = 100_000


_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def new_prediction_id() -> str:
    """A UUID version 7 as 32 hex digits: 48 bits of Unix milliseconds, then random bits.

    The random bits come from a generator seeded by the OS (again in a forked child), not
    from ``os.urandom`` each time: that system call lets go of the GIL, and a batch of 1,000
    predictions handed the GIL back and forth 1,000 times (9% of a batch request's time).
    Prediction ids name predictions; they are not secrets (feedback needs a key)."""
    millis = time.time_ns() // 1_000_000
    random_bits = _random.getrandbits(80)
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | (random_bits >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | random_bits & (2**62 - 1)
    return f"{value:032x}"


Packed = tuple[str, str, int, "str | None", bytes, "str | None", "float | None", float]
"""A logged prediction as it travels to the writer: id, endpoint, version id, text (None when
texts are not kept), result as JSON (as Comprehend's ClassifyDocument answers it), top label,
top score, Unix time. A flat tuple is cheap to queue and to hand to another process."""


def _row(packed: Packed) -> dict[str, Any]:
    prediction_id, endpoint, version_id, text, result, top_label, top_score, created = packed
    return {
        "id": prediction_id,
        "endpoint": endpoint,
        "version_id": version_id,
        "text": text,
        "result": result.decode(),  # JSON text, stored as is
        "top_label": top_label,
        "top_score": top_score,
        "created_at": datetime.fromtimestamp(created, UTC),
    }


def write_batches(source: Any, database: Database, flush_seconds: float) -> None:
    """Write packed rows from ``source`` (a queue) until it yields ``None``: everything that arrives
    within ``flush_seconds`` of the first pending row goes in one transaction (one commit per
    row would cost more than the prediction itself)."""
    closing = False
    while not closing:
        try:
            item = source.get(timeout=flush_seconds)
        except queue.Empty:
            continue
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + flush_seconds
        while True:
            if item is None:
                closing = True
                break
            batch.append(_row(item))
            remaining = deadline - time.monotonic()
            if len(batch) >= BATCH_ROWS or remaining <= 0:
                break
            try:
                item = source.get(timeout=remaining)
            except queue.Empty:
                break
        if batch:
            _write(database, batch)


def _write(database: Database, batch: list[dict[str, Any]]) -> None:
    """One transaction for the batch; if it fails (say, a version deleted meanwhile), each row
    on its own, so that one bad row does not lose the others."""
    try:
        with database.transaction() as session:
            PredictionRepository(session).add_many(batch)
        return
    except Exception:
        if len(batch) == 1:
            log.exception("writing logged prediction %s failed", batch[0]["id"])
            return
        log.warning("writing %d logged predictions at once failed; writing them one by one", len(batch))
    for row in batch:
        _write(database, [row])


class _Unpacked:
    """The rows of the lists a server process sends, one at a time, as ``write_batches`` reads."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.pending: list[Packed | None] = []

    def get(self, timeout: float) -> Packed | None:
        """The next row (``None`` at the end), or ``queue.Empty`` after ``timeout``."""
        if not self.pending:
            if not self.connection.poll(timeout):
                raise queue.Empty
            try:
                self.pending = list(reversed(self.connection.recv()))
            except EOFError:  # the server process is gone: write what came, then stop
                self.pending = [None]
        return self.pending.pop()


def _writer_process(database_url: str, connection: Any, flush_seconds: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the server; it sends the sentinel
    # Below the server processes: a batch insert is a burst of CPU that, at the same priority,
    # preempted request handling on a busy machine (p99 at 32 connections, 2 workers: 18-21
    # ms -> 16-18 ms). Rows wait in the pipe meanwhile; at full load it still kept up.
    os.nice(10)
    database = Database(database_url)
    try:
        write_batches(_Unpacked(connection), database, flush_seconds)
    finally:
        database.dispose()


class PredictionLog:
    """Writes each recorded prediction as a row of the ``predictions`` table (read by
    :mod:`tagloop.services.prediction_history`). ``enabled`` False: nothing is recorded
    (``TAGLOOP_LOG_PREDICTIONS``); ``keep_text`` False: rows have no text
    (``TAGLOOP_LOG_PREDICTION_TEXT``)."""

    def __init__(
        self, database: Database, enabled: bool = True, flush_seconds: float = 0.25, keep_text: bool = True
    ) -> None:
        self.database = database
        self.enabled = enabled
        self.keep_text = keep_text
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[Packed | None] = queue.Queue(maxsize=QUEUE_ROWS)
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        # with a writer process: rows wait in a list; a thread sends each list in one message
        self._in_process = False
        self._buffer: collections.deque[Packed] = collections.deque()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._sender: Any = None
        self._closing = threading.Event()

    def use_process(self) -> None:
        """Write from a separate process (call before the first ``record``)."""
        self._in_process = True

    def record(
        self,
        endpoint: str,
        version_id: int,
        text: str,
        prediction: Prediction,
        result: dict[str, Any] | None = None,
    ) -> str | None:
        """Queue one prediction of a classified text for writing; returns its id (None when
        logging is off). The row keeps the result as Comprehend's ClassifyDocument answers it
        (``result``, when the caller built it already for its answer), and the text unless
        ``keep_text`` is off."""
        if not self.enabled:
            return None
        prediction_id = new_prediction_id()
        labels, scores = prediction.labels, prediction.scores
        top_label, top_score = (labels[0], scores[0]) if scores else (None, None)
        encoded = orjson.dumps(result if result is not None else comprehend.result(prediction))
        if self._writer is None or not self._writer.is_alive():
            try:
                self._start_writer()
            except Exception:  # logging must never fail the request: rows wait for the next try
                log.exception("starting the prediction log writer failed")
        kept = text if self.keep_text else None
        packed = (prediction_id, endpoint, version_id, kept, encoded, top_label, top_score, time.time())
        if self._in_process:
            if len(self._buffer) < QUEUE_ROWS:  # deque appends and pops are atomic: no lock
                self._buffer.append(packed)
            else:
                log.warning("prediction log buffer full: prediction %s not logged", prediction_id)
            return prediction_id
        try:
            self._queue.put_nowait(packed)
        except queue.Full:
            log.warning("prediction log queue full: prediction %s not logged", prediction_id)
        return prediction_id

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is not None and self._writer.is_alive():
                return
            if self._in_process:
                target: Any = self._send
                context = multiprocessing.get_context("spawn")
                receiver, self._sender = context.Pipe(duplex=False)
                self._process = context.Process(
                    target=_writer_process,
                    args=(self.database.url, receiver, self.flush_seconds),
                    name="tagloop-prediction-log",
                    daemon=True,
                )
                self._process.start()
                receiver.close()
                args: tuple[Any, ...] = ()
            else:
                target, args = write_batches, (self._queue, self.database, self.flush_seconds)
            self._writer = threading.Thread(
                target=target, args=args, name="tagloop-prediction-log", daemon=True
            )
            self._writer.start()

    def _send(self) -> None:
        """Hand the buffered rows to the writer process every ``flush_seconds / 5``."""
        while True:
            closing = self._closing.wait(self.flush_seconds / 5)
            rows = [self._buffer.popleft() for _ in range(len(self._buffer))]
            try:
                if rows:
                    self._sender.send(rows)
                if closing:
                    self._sender.send([None])
                    return
            except OSError:
                log.exception("the prediction log process is gone: %d predictions not logged", len(rows))
                return

    def close(self) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
            process, self._process = self._process, None
        if writer is None or not writer.is_alive():
            return
        if process is None:
            self._queue.put(None)
            writer.join(timeout=30)
            return
        self._closing.set()
        writer.join(timeout=30)
        process.join(timeout=30)
        self._sender.close()
