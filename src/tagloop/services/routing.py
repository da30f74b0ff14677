"""Routing predictions to human review, without slowing classify and without losing a task.

The doors decide each prediction of an endpoint with an active policy
(``domain.routing.decide`` with a draw from this process's generator), make a task of each
routed one (:func:`routed_task`, its id given here) and hand them to the :class:`TaskWriter`.

Write-ahead journal, then group commit. In a server (:meth:`TaskWriter.use_process` with
:meth:`TaskWriter.use_journal`), a request's routed tasks are first appended to this process's
journal (``services/task_journal.py``: one ``os.write``, in the kernel once it returns, so
they survive the process being killed); then the tasks journalled over
:data:`FLUSH_SECONDS` (50 ms) go in one message to a writer process, which writes everything
that has arrived in one transaction and acknowledges it; the acknowledgement lets the journal
delete its segments. The answer does not wait for the commit: a server killed meanwhile has its
journal replayed at the next start (:func:`task_journal.replay`, ids already stored are
skipped), so every task an answer named is stored. A journal write that fails (or a backlog
over ``max_pending`` tasks) answers ``routed: false``, never a 5xx.

Without a journal (``TAGLOOP_ROUTING_WAIT_FOR_COMMIT=true``, or a loop or thread other than
the server's: the CLI, batch jobs) a request whose answer says "routed" awaits its task's
commit (by the writer process, sent at the end of the event-loop turn, or a writer thread
lingering ``linger_seconds`` for more), so a task is committed before any answer names it.
Requests with nothing routed never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import multiprocessing.process
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tagloop.domain.predictions import Prediction
from tagloop.domain.review import NewTask, Queue
from tagloop.domain.routing import Reason, RoutingPolicy, decide, priority
from tagloop.services.endpoints import Serving
from tagloop.services.prediction_log import new_prediction_id
from tagloop.services.task_journal import Journal, Segment, encode, replay
from tagloop.services.task_store import Write, channel_process, frame, unframe
from tagloop.storage.database import Database
from tagloop.storage.tables import ReviewTaskRow

log = logging.getLogger(__name__)

_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
draw = _random.random
"""A uniform draw in [0, 1) for the audit rule: a per-process generator seeded by the OS
(again in a forked child, so worker processes do not draw the same sequence)."""


def new_task_id() -> str:
    """A review task id: time-ordered like prediction ids (32 hex digits), so inserts append."""
    return new_prediction_id()


def routed_task(
    serving: Serving,
    policy: RoutingPolicy,
    reason: Reason,
    text: str,
    prediction: Prediction,
    prediction_id: str | None,
    task_id: str | None = None,
) -> NewTask:
    """The review task of a prediction ``serving`` made and ``policy`` routed (its id given
    here: the answer names it before the row exists)."""
    scores = prediction.scores
    return NewTask(
        text=text,
        mode=prediction.mode,
        choices=tuple(serving.model.labels),
        reason=reason.value,
        classifier_id=serving.classifier_id,
        endpoint=serving.endpoint,
        version_id=serving.version_id,
        prediction_id=prediction_id,
        prediction={"labels": list(prediction.labels), "scores": list(scores)},
        priority=priority(prediction),
        uncertainty=1.0 - scores[0] if scores else 1.0,
        required=policy.required,
        lease_seconds=policy.lease_seconds,
        lifetime_seconds=policy.lifetime_seconds,
        queue=Queue.REVIEW,
        id=task_id or new_task_id(),
    )


def route_batch(
    serving: Serving,
    policy: RoutingPolicy,
    texts: Sequence[str],
    predictions: Sequence[Prediction],
    seed: str,
    database: Database,
    write: Write,
) -> list[dict[str, Any] | None]:
    """Route a batch job's chunk: what each line says under ``review`` (None for a document
    with an error), once the routed ones' tasks are written (raises if they cannot be).

    Task ids and audit draws are derived from ``seed`` (the job and shard) and the document's
    place, so a shard run again after a crash routes the same documents to the same tasks, and
    tasks written by the run before are not written twice."""
    reviews: list[dict[str, Any] | None] = []
    tasks: list[NewTask] = []
    for number, (text, prediction) in enumerate(zip(texts, predictions, strict=True)):
        if prediction.error is not None:
            reviews.append(None)
            continue
        digest = hashlib.blake2b(f"{seed}:{number}".encode(), digest_size=24).digest()
        reason = decide(policy, prediction, int.from_bytes(digest[16:], "big") / 2**64)
        if reason is None:
            reviews.append(NOT_ROUTED)
            continue
        task = routed_task(serving, policy, reason, text, prediction, None, digest[:16].hex())
        tasks.append(task)
        reviews.append(review_field(task, True))
    if tasks:
        with database.reading() as session:
            ids = [str(task.id) for task in tasks]
            written = set(session.scalars(select(ReviewTaskRow.id).where(ReviewTaskRow.id.in_(ids))))
        if len(written) < len(tasks):
            write([task for task in tasks if task.id not in written])
    return reviews


NOT_ROUTED: dict[str, Any] = {"routed": False}


def review_field(task: NewTask | None, stored: bool) -> dict[str, Any]:
    """What a native answer says under ``review``: ``{"routed": true, "task_id", "reason"}``
    once the task is stored, else ``{"routed": false}``."""
    if task is None or not stored:
        return NOT_ROUTED
    return {"routed": True, "task_id": task.id, "reason": task.reason}


class _Entry:
    __slots__ = ("future", "loop", "tasks")

    def __init__(
        self,
        tasks: Sequence[NewTask],
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[bool] | Future[bool] | None,
    ) -> None:
        self.tasks = tasks
        self.loop = loop
        self.future = future


class TaskWriter:
    """Group commit of review tasks: through the writer process for the event loop of a server
    (:meth:`use_process`), else from a thread of this process (see the module docstring)."""

    def __init__(
        self,
        write: Write,
        *,
        max_rows: int = 500,
        linger_seconds: float = 0.002,
        max_pending: int = 20_000,
    ) -> None:
        self.write = write
        self.max_rows = max_rows
        self.linger_seconds = linger_seconds
        self.max_pending = max_pending
        self._queue: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self._pending = (
            0  # tasks queued, not yet written: a rough count (no lock on the hot path), for a bound
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # transactions written (for tests and benchmarks)
        self._process_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the writer process serves
        self._channel: _Channel | None = None
        self._opening: asyncio.Future[_Channel | None] | None = None
        self._journal: Journal | None = None
        self._replay_insert: Callable[[Sequence[NewTask]], Any] | None = None

    @property
    def pending(self) -> int:
        """Tasks handed over and not yet written (or failed): 0 when the writer is idle."""
        return self._pending

    # ---- the doors ---------------------------------------------------------------------
    def write_now(self, tasks: Sequence[NewTask]) -> None:
        """Write ``tasks`` in one transaction from the calling thread (feedback, batch jobs:
        callers that wait anyway); raises if they could not be written."""
        self.write(tasks)

    async def stored(self, tasks: Sequence[NewTask]) -> bool:
        """Queue ``tasks``: True once an answer may name them (in the journal, or without one
        once the transaction holding them committed), False when they could not be kept (the
        log says why)."""
        if not tasks:
            return True
        loop = asyncio.get_running_loop()
        channel = self._channel if self._loop is loop else None
        if (channel is None or channel.closed) and self._process_url is not None:
            channel = await self._open(loop)
        if channel is not None and self._journal is not None:
            if not self._room(len(tasks)):
                return False
            record = encode(tasks)  # encoded once: for the journal and the writer process
            segment = self._journal.append_record(record)  # in the kernel: survives a kill of this process
            if segment is None:
                return False
            self._pending += len(tasks)
            channel.add(loop, len(tasks), record, None, segment)
            return True  # no wait: the journal's replay stores them if this process dies first
        future: asyncio.Future[bool] = loop.create_future()
        if channel is not None:
            if not self._room(len(tasks)):
                return False
            self._pending += len(tasks)
            channel.add(loop, len(tasks), encode(tasks), future)
        elif not self._put(_Entry(tasks, loop, future)):
            return False
        return await future

    def stored_now(self, tasks: Sequence[NewTask], timeout: float = 60.0) -> bool:
        """:meth:`stored` for a thread that is not an event loop's (batch jobs, the CLI)."""
        if not tasks:
            return True
        future: Future[bool] = Future()
        if not self._put(_Entry(tasks, None, future)):
            return False
        try:
            return future.result(timeout)
        except TimeoutError:
            log.error("review tasks not written within %s s: answered as not routed", timeout)
            return False

    def send(self, tasks: Sequence[NewTask]) -> None:
        """Queue ``tasks`` without waiting (for answers that do not say they were routed:
        Comprehend's ClassifyDocument); a task lost in a crash was promised to nobody."""
        if not tasks:
            return
        channel, loop = self._channel, _running_loop()
        if channel is not None and not channel.closed and loop is not None and loop is self._loop:
            if self._room(len(tasks)):
                record = encode(tasks)
                segment = self._journal.append_record(record) if self._journal is not None else None
                self._pending += len(tasks)
                channel.add(loop, len(tasks), record, None, segment)
            return
        self._put(_Entry(tasks, None, None))

    def _room(self, count: int) -> bool:
        if self._pending > self.max_pending:
            log.warning("review task writer is %d tasks behind: %d tasks not routed", self._pending, count)
            return False
        return True

    # ---- the writer process --------------------------------------------------------------
    def use_process(self, database_url: str) -> None:
        """Write the tasks of one event loop's requests (a server's) from a process of its own:
        their inserts' Python (about 80 µs a task, 350 µs a transaction) stays off the serving
        process's GIL. Requests of other loops and other threads keep the writer thread."""
        self._process_url = database_url

    def use_journal(self, folder: Path, insert_new: Callable[[Sequence[NewTask]], Any]) -> None:
        """Answer "routed" once the tasks are in a journal in ``folder`` (for the requests of the
        writer process's loop), not once committed; ``insert_new`` (skipping ids already stored)
        replays what is left of it when this writer closes."""
        self._journal = Journal(folder)
        self._replay_insert = insert_new

    async def prepare(self) -> None:
        """Start the writer process now (rather than at the first routed prediction)."""
        if self._process_url is not None and (self._channel is None or self._channel.closed):
            await self._open(asyncio.get_running_loop())

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Channel | None:
        """This loop's channel to a (new) writer process; None if another loop has one or
        it cannot start (the writer thread is used then)."""
        if self._loop is not None and self._loop is not loop:
            return None
        if self._opening is not None:
            return await asyncio.shield(self._opening)
        self._loop = loop
        self._opening = loop.create_future()
        channel = None
        try:
            ours, theirs = socket.socketpair()
            context = multiprocessing.get_context("spawn")
            process = context.Process(
                target=channel_process,
                args=(self._process_url, theirs),
                name="tagloop-review-tasks",
                daemon=True,
            )
            process.start()
            theirs.close()
            ours.setblocking(False)
            _, protocol = await loop.connect_accepted_socket(lambda: _Channel(self, process), ours)
            channel = protocol
        except Exception:
            log.exception("starting the review task writer process failed: writing from a thread")
            self._process_url = None
        finally:
            self._channel = channel
            self._opening.set_result(channel)
            self._opening = None
        return channel

    def _put(self, entry: _Entry) -> bool:
        if not self._room(len(entry.tasks)):
            return False
        if self._thread is None or not self._thread.is_alive():
            self._start()
        self._pending += len(entry.tasks)
        self._queue.put(entry)
        return True

    # ---- the writer thread -------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="tagloop-review-tasks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        closing = False
        while not closing:
            entry = self._queue.get()
            if entry is None:
                break
            batch = [entry]
            rows = len(entry.tasks)
            deadline = time.monotonic() + self.linger_seconds
            while rows < self.max_rows:
                try:
                    remaining = deadline - time.monotonic()
                    more = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                batch.append(more)
                rows += len(more.tasks)
            self._commit(batch)
            self._pending -= rows

    def _commit(self, batch: list[_Entry]) -> None:
        """One transaction for the batch; if it fails, each request's tasks on their own, so
        one bad task (its classifier deleted meanwhile, say) fails only its own request."""
        ok = self._write([task for entry in batch for task in entry.tasks])
        if ok or len(batch) == 1:
            _resolve(batch, [ok] * len(batch))
            return
        _resolve(batch, [self._write(entry.tasks) for entry in batch])

    def _write(self, tasks: Sequence[NewTask]) -> bool:
        try:
            self.write(tasks)
        except Exception:
            log.exception("writing %d review tasks failed: their answers say not routed", len(tasks))
            return False
        self.batches += 1
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread (and the writer process)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
        channel, self._channel = self._channel, None
        if channel is not None:
            if self._loop is not None and self._loop.is_running() and self._loop is not _running_loop():
                self._loop.call_soon_threadsafe(channel.flush)
            elif self._loop is not None and not self._loop.is_closed():
                channel.flush()
            channel.close(timeout)
        journal, self._journal = self._journal, None
        if journal is not None and self._replay_insert is not None:
            journal.close()  # segments not acknowledged (the writer process's last batches) stay:
            try:  # stored now, skipping what the writer process committed before it ended
                replay(journal.folder, self._replay_insert)
            except Exception:
                log.exception("review task journal not replayed at close: the next start will")


FLUSH_SECONDS = 0.05
"""How long journalled tasks (whose answers do not wait for the commit) gather in the serving
process before they go to the writer process in one message: one message, one transaction and
one acknowledgement for every 50 ms of routed requests (about 40 tasks at 4,500 classify req/s
with 18 % routed), not one for every event-loop turn that routed something (about 1 task
each): a transaction costs the writer process about 250 µs of CPU beyond its rows, and each
message wakes both processes. Nothing waits for it: the journal already holds the tasks."""


class _Channel(asyncio.Protocol):
    """This process's side of the writer process, on one event loop: batches go out as the
    requests of a loop turn route them (after :data:`FLUSH_SECONDS` when they are journalled);
    acknowledgements resolve their futures on the loop (no thread hand-off: waiting for the
    GIL cost a routed request 10 ms under load)."""

    def __init__(self, writer: TaskWriter, process: multiprocessing.process.BaseProcess) -> None:
        self.writer = writer
        self.process = process
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: dict[int, tuple[int, list[asyncio.Future[bool] | None], list[Segment]]] = {}
        self.number = 0
        self.records: list[bytes] = []  # of the requests of this loop turn (task_journal.encode)
        self.count = 0  # their tasks
        self.futures: list[asyncio.Future[bool] | None] = []
        self.segments: list[Segment] = []  # the journal records of the batch, one per request
        self.timer: asyncio.TimerHandle | None = None  # the flush of journalled records
        self.soon = False  # a flush at the end of this loop turn is scheduled
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        count: int,
        record: bytes,
        future: asyncio.Future[bool] | None,
        segment: Segment | None = None,
    ) -> None:
        self.records.append(record)
        self.count += count
        self.futures.append(future)
        if segment is not None:
            self.segments.append(segment)
        if future is not None or self.count >= self.writer.max_rows:
            if not self.soon:  # a request awaits the commit: after the other requests of this turn
                self.soon = True
                loop.call_soon(self.flush)
        elif self.timer is None:  # nobody waits (the journal holds the tasks): gather more first
            self.timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.soon = False
        records, count, futures, segments = self.records, self.count, self.futures, self.segments
        self.records, self.count, self.futures, self.segments = [], 0, [], []
        if not records:
            return
        if self.closed or self.transport is None:
            self.writer._pending -= count
            self._done(segments, False)
            _settle([(future, False) for future in futures if future is not None])
            return
        self.number += 1
        self.waiting[self.number] = (count, futures, segments)
        self.transport.write(frame((self.number, b"".join(records))))

    def _done(self, segments: list[Segment], committed: bool) -> None:
        journal = self.writer._journal
        if journal is not None:
            for segment in segments:
                journal.done(segment, committed)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for acknowledged in unframe(self.buffer):
            for number, ok in acknowledged:
                count, futures, segments = self.waiting.pop(number, (0, [], []))
                self.writer._pending -= count
                self._done(segments, ok)
                if ok:
                    self.writer.batches += 1
                elif segments:
                    log.error("%d review tasks not written: kept in the journal for the next start", count)
                else:
                    log.error("%d review tasks were not written: their answers say not routed", count)
                _settle([(future, ok) for future in futures if future is not None])

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiting and self.writer._journal is None:
            log.error(
                "the review task writer process is gone: %d batches answered as not routed", len(self.waiting)
            )
        for count, futures, segments in self.waiting.values():
            self.writer._pending -= count
            self._done(segments, False)
            _settle([(future, False) for future in futures if future is not None])
        self.waiting.clear()

    def close(self, timeout: float) -> None:
        """End the writer process: it writes what it was sent, sees the end and exits."""
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:  # at once: the transport would close it only in a later loop turn
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
            self.process.join(timeout)
            self.transport.close()
        else:
            self.process.join(timeout)


def _resolve(batch: list[_Entry], results: list[bool]) -> None:
    """Hand each waiting request its result: one wake-up per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool]]] = {}
    for entry, ok in zip(batch, results, strict=True):
        future = entry.future
        if future is None:
            continue
        if entry.loop is None:
            future.set_result(ok)
        else:
            by_loop.setdefault(entry.loop, []).append((future, ok))  # type: ignore[arg-type]
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, waiting)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _settle(waiting: list[tuple[asyncio.Future[bool], bool]]) -> None:
    for future, ok in waiting:
        if not future.done():  # a request whose client went away is cancelled
            future.set_result(ok)
