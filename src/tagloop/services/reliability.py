"""Reviewer reliabilities per classifier (Dawid–Skene over its answered history), estimated now
and then and kept in memory, for the review service to consolidate with.

An estimate is made from every multi-class task of the classifier with two or more labelled
answers (domain/dawid_skene.py ``fit_history``). It is never made per answer: the service tells
:meth:`Reliabilities.answered` of each answer, which only counts; once ``refresh_answers``
answers came in since the last estimate, or ``refresh_seconds`` passed, one background thread
makes a new one (reading three small columns, then fitting outside any transaction). Until the
classifier has ``min_tasks`` such tasks there is no estimate and majority vote alone decides.
Each process keeps its own estimates (several server processes each estimate for themselves).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tagloop.domain.dawid_skene import DawidSkeneResult, fit_history
from tagloop.errors import InvalidRequest
from tagloop.storage.database import Database
from tagloop.storage.review import ReviewRepository

log = logging.getLogger(__name__)

Method = Literal["majority", "dawid-skene"]


@dataclass(frozen=True)
class ReliabilityPolicy:
    """How the review service consolidates (TAGLOOP_REVIEW_CONSOLIDATION and friends)."""

    method: Method = "majority"
    min_tasks: int = 50
    """Multi-answer tasks a classifier needs before reliabilities are estimated."""
    threshold: float = 0.9
    """Least posterior with which Dawid–Skene decides a task (else majority / the moderator)."""
    refresh_answers: int = 200
    refresh_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.method not in ("majority", "dawid-skene"):
            raise InvalidRequest(f"review consolidation: {self.method!r} is not majority or dawid-skene")
        if self.min_tasks < 1 or self.refresh_answers < 1 or not self.refresh_seconds > 0:
            raise InvalidRequest("review reliability: min tasks, refresh answers, seconds must be positive")
        if not 0.5 < self.threshold <= 1:
            raise InvalidRequest(f"review reliability threshold: above 0.5, at most 1, not {self.threshold}")

    @property
    def enabled(self) -> bool:
        return self.method == "dawid-skene"


@dataclass(frozen=True)
class Estimate:
    result: DawidSkeneResult | None
    """None when the classifier has no multi-answer task at all."""
    usable: bool
    """Made from at least ``min_tasks`` multi-answer tasks: consolidation may use it."""
    tasks: int
    at: float
    """``monotonic()`` when made."""
    ticket: int = 0
    """Order in which estimates were started: a slower, older one never replaces a newer one."""


class Reliabilities:
    """The estimates of one review service, per classifier id."""

    def __init__(
        self, database: Database, policy: ReliabilityPolicy, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.database = database
        self.policy = policy
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._estimates: dict[int, Estimate] = {}
        self._since: dict[int, int] = {}
        self._refreshing: set[int] = set()
        self._tickets = 0
        self._threads: set[threading.Thread] = set()

    def current(self, classifier_id: int) -> DawidSkeneResult | None:
        """The classifier's estimate as it is now (no database access); None if there is none
        made from enough tasks."""
        estimate = self._estimates.get(classifier_id)
        return estimate.result if estimate is not None and estimate.usable else None

    def latest(self, classifier_id: int) -> Estimate:
        """The classifier's estimate, made now when there is none or it is due (agreement)."""
        with self._lock:
            estimate = self._estimates.get(classifier_id)
            fresh = estimate is not None and not self._due(classifier_id, estimate)
        return estimate if fresh and estimate is not None else self._estimate(classifier_id)

    def _due(self, classifier_id: int, estimate: Estimate | None) -> bool:
        return (
            estimate is None
            or self._since.get(classifier_id, 0) >= self.policy.refresh_answers
            or self.monotonic() - estimate.at >= self.policy.refresh_seconds
        )

    def answered(self, classifier_id: int) -> None:
        """Count an answer; start a background refresh when the estimate is due."""
        if not self.policy.enabled:
            return
        with self._lock:
            self._since[classifier_id] = self._since.get(classifier_id, 0) + 1
            due = self._due(classifier_id, self._estimates.get(classifier_id))
            if not due or classifier_id in self._refreshing:
                return
            self._refreshing.add(classifier_id)
            thread = threading.Thread(
                target=self._refresh_quietly, args=(classifier_id,), name="review-reliability", daemon=True
            )
            self._threads.add(thread)
        thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background estimates running now (tests; an orderly shutdown)."""
        with self._lock:
            running = list(self._threads)
        for thread in running:
            thread.join(timeout)

    def _refresh_quietly(self, classifier_id: int) -> None:
        try:
            self._estimate(classifier_id)
        except Exception:
            log.exception("review: estimating reviewer reliabilities of classifier %s failed", classifier_id)
        finally:
            with self._lock:
                self._refreshing.discard(classifier_id)
                self._threads.discard(threading.current_thread())

    @property
    def estimates_made(self) -> int:
        """Estimates started so far (all classifiers)."""
        return self._tickets

    def refresh(self, classifier_id: int) -> Estimate:
        """Estimate the classifier's reliabilities now (whatever the policy's method)."""
        return self._estimate(classifier_id)

    def _estimate(self, classifier_id: int) -> Estimate:
        with self._lock:
            self._tickets += 1
            ticket = self._tickets
        with self.database.reading() as session:
            rows = ReviewRepository(session).labelled_answers(classifier_id)
        result, tasks = fit_history(rows)
        usable = tasks >= self.policy.min_tasks
        estimate = Estimate(result if tasks else None, usable, tasks, self.monotonic(), ticket)
        with self._lock:
            stored = self._estimates.get(classifier_id)
            if stored is None or stored.ticket < ticket:
                self._estimates[classifier_id] = estimate
                self._since[classifier_id] = 0
        if estimate.usable and estimate.result is not None:
            log.info(
                "review: reviewer reliabilities of classifier %s from %d tasks (%d EM iterations)",
                classifier_id,
                tasks,
                estimate.result.iterations,
            )
        return estimate
