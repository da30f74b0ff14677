"""Human review: the task queue, leases, answers, consolidation into verified documents,
moderation, undo, and agreement between reviewers (REVIEW_API.md is the interface).

A task is handed out (leased for its ``lease_seconds``, A2I's TaskTimeLimitInSeconds) while
fewer people hold it than it requires (``holders`` = answers + live leases). A reviewer's live
lease comes back first, so a reload shows the same task; a task they answered never; tasks
they skipped only after every other. When the required answers are in, a majority becomes the
task's final labels and one verified ``documents`` row (origin ``review``, or ``feedback`` for
an end user's feedback); a tie goes to the moderator queue. A moderator's decision is final.
With TAGLOOP_REVIEW_CONSOLIDATION=dawid-skene and enough history (services/reliability.py), a
multi-class task of two or more answers is decided by the reviewers' estimated reliabilities
when their posterior reaches the threshold: a tie settled, or a majority overruled
(consolidation ``dawid_skene``); otherwise as above.

Housekeeping runs inside the calls that need it, at most once a second per service: leases that
ran out are released, tasks past their availability lifetime fail (A2I's FailureCode
``Expired``). Listeners (``add_listener``) are told of each completed task after its commit.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tagloop.domain import consolidation, dawid_skene
from tagloop.domain.consolidation import Answer, Outcome, Status
from tagloop.domain.records import Mode, Origin
from tagloop.domain.review import (
    AnswerStatus,
    AnswerView,
    Consolidation,
    NewTask,
    Queue,
    QueueStats,
    TaskStatus,
    TaskView,
    check_answer,
    ordered_choices,
    predicted_labels,
)
from tagloop.domain.routing import Reason
from tagloop.errors import Conflict, InvalidRequest
from tagloop.services.reliability import Reliabilities, ReliabilityPolicy
from tagloop.storage.database import Database
from tagloop.storage.review import ReviewRepository, task_row, transient, unique_violation, write_transaction
from tagloop.storage.tables import ReviewAnswerRow, ReviewTaskRow, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

SWEEP_SECONDS = 1.0
"""Least time between two sweeps (expired leases, expired tasks) of one service."""
ATTEMPTS = 8
"""Tries of a write transaction that failed transiently (deadlock, lost race)."""
MAX_LIST = 1_000
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _view(
    task: ReviewTaskRow,
    classifier: str | None,
    leased_until: datetime | None = None,
    answers: Sequence[ReviewAnswerRow] = (),
) -> TaskView:
    mode = Mode(task.mode)
    return TaskView(
        id=task.id,
        classifier=classifier,
        endpoint=task.endpoint,
        text=task.text,
        mode=mode,
        choices=ordered_choices(task.choices or [], task.prediction),
        prediction=task.prediction,
        reason=task.reason,
        priority=task.priority,
        required=task.required,
        answered=task.answered,
        status=TaskStatus(task.status),
        queue=Queue(task.queue) if task.queue else None,
        created_at=task.created_at,
        expires_at=task.expires_at,
        leased_until=leased_until,
        final_labels=tuple(task.final_labels) if task.final_labels is not None else None,
        feedback=task.feedback,
        loop_name=task.loop_name,
        flow_definition_id=task.flow_definition_id,
        input_content=task.input_content,
        answers=tuple(
            AnswerView(
                reviewer=row.reviewer,
                status=row.status,
                labels=tuple(row.labels) if row.labels is not None else None,
                answer_content=row.answer_content,
                accepted=row.accepted,
                seconds=row.time_spent,
                leased_at=row.leased_at,
                answered_at=row.answered_at,
                role=row.role,
            )
            for row in answers
        ),
        consolidation=task.consolidation,
        decided_by=task.decided_by,
        failure_code=task.failure_code,
        failure_reason=task.failure_reason,
        completed_at=task.completed_at,
        version_id=task.version_id,
        prediction_id=task.prediction_id,
    )


def page_token(view: TaskView) -> str:
    """The ``after`` of the page that follows ``view`` in :meth:`ReviewService.list`."""
    return base64.urlsafe_b64encode(json.dumps([view.created_at.isoformat(), view.id]).encode()).decode()


def _after(token: str) -> tuple[datetime, str]:
    try:
        created_at, task_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        when = datetime.fromisoformat(created_at)
    except (binascii.Error, UnicodeError, ValueError, TypeError) as exc:
        raise InvalidRequest("after: not a page token this service gave") from exc
    if not isinstance(task_id, str) or not _TOKEN_ID.fullmatch(task_id) or when.tzinfo is None:
        raise InvalidRequest("after: not a page token this service gave")  # nothing odd reaches SQL
    return when, task_id


class ReviewService:
    """See REVIEW_API.md; ``order`` is TAGLOOP_REVIEW_ORDER (``uncertain`` or ``oldest``)."""

    def __init__(
        self,
        database: Database,
        order: str = "uncertain",
        clock: Clock = utcnow,
        reliability: ReliabilityPolicy | None = None,
    ) -> None:
        if order not in ("uncertain", "oldest"):
            raise InvalidRequest(f"review order: {order!r} is not uncertain or oldest")
        self.database = database
        self.order = order
        self.clock = clock
        self.reliability = Reliabilities(database, reliability or ReliabilityPolicy())
        """TAGLOOP_REVIEW_CONSOLIDATION: reviewer reliabilities per classifier, when Dawid–Skene."""
        self._listeners: list[Callable[[str], None]] = []
        self._sweep_lock = threading.Lock()
        # SQLite has one writer: this process's threads take turns here, first come first
        # served, instead of polling the busy lock (where a waiter can starve for seconds)
        self._writer = threading.Lock() if database.is_embedded else None
        self._swept_at: datetime | None = None

    # --- plumbing ------------------------------------------------------------------------

    def _write(self, work: Callable[[Session], T], unique: bool = False) -> T:
        """Run ``work`` in a write transaction, again when it failed transiently (with
        ``unique``, also after a duplicate key: a lease row made concurrently)."""
        for attempt in range(ATTEMPTS):
            try:
                if self._writer is None:
                    with write_transaction(self.database) as session:
                        return work(session)
                with self._writer, write_transaction(self.database) as session:
                    return work(session)
            except Exception as exc:
                if not transient(exc, unique) or attempt == ATTEMPTS - 1:
                    raise
                time.sleep(0.002 * (attempt + 1))
        raise AssertionError("unreachable")

    @contextmanager
    def _reading(self) -> Iterator[ReviewRepository]:
        with self.database.reading() as session:
            yield ReviewRepository(session)

    def _sweep(self, force: bool = False) -> None:
        """Release leases that ran out and fail expired tasks, at most once a second."""
        now = self.clock()
        if not force:
            last = self._swept_at
            if last is not None and now - last < timedelta(seconds=SWEEP_SECONDS):
                return
        if not self._sweep_lock.acquire(blocking=False):
            return  # another thread sweeps right now
        try:
            self._swept_at = now

            def sweep(session: Session) -> builtins.list[str]:  # one transaction: fewer round trips
                repo = ReviewRepository(session)
                repo.release_expired(now)
                return repo.expire(now)

            failed = self._write(sweep)
            if failed:
                log.info("review: %d task(s) expired", len(failed))
        finally:
            self._sweep_lock.release()

    @staticmethod
    def _name(repo: ReviewRepository, classifier_id: int | None) -> str | None:
        return repo.classifier_name(classifier_id)

    def _notify(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            for listener in builtins.list(self._listeners):
                try:
                    listener(task_id)
                except Exception:
                    log.exception("review: a listener failed for task %s", task_id)

    def add_listener(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(task_id)`` after each task completes (after the commit)."""
        self._listeners.append(fn)

    def sweep(self) -> None:
        """Release leases that ran out and fail expired tasks now."""
        self._sweep(force=True)

    # --- creating ------------------------------------------------------------------------

    def add_tasks(self, tasks: Sequence[NewTask]) -> list[str]:
        """Store ``tasks`` in one transaction; returns their ids (given or new)."""
        now = self.clock()
        rows = [task_row(task, now) for task in tasks]
        try:
            self._write(lambda session: ReviewRepository(session).add_many(rows))
        except IntegrityError as exc:
            if unique_violation(exc):
                raise Conflict("a review task with one of these ids or loop names exists already") from None
            raise
        return [row["id"] for row in rows]

    # --- reviewing -----------------------------------------------------------------------

    def next_task(
        self, reviewer: str, *, queue: Queue = Queue.REVIEW, classifier: str | None = None
    ) -> TaskView | None:
        """Lease the reviewer their next task: their live lease first (a reload shows the same
        task), then the queue's first task they have neither answered nor skipped, then the
        ones they skipped, longest ago first. None when the queue has nothing for them.

        The moderate queue hands out no leases (and knows no skips): moderators see its first
        task, whoever answered it; :meth:`moderate` decides it."""
        self._sweep()
        queue = Queue(queue)

        def work(session: Session) -> TaskView | None:
            repo = ReviewRepository(session)
            classifier_id = repo.classifier_id(classifier) if classifier is not None else None
            now = self.clock()
            held = repo.live_lease(reviewer, queue, classifier_id, now)
            if held is not None:
                mine, lease, name = held
                return _view(mine, name, lease.leased_until)
            found = repo.candidate(reviewer, queue, classifier_id, self.order)
            if found is None:
                found = repo.skipped_candidate(reviewer, queue, classifier_id)
            if found is None:
                return None
            task, name = found
            if queue is Queue.MODERATE:
                return _view(task, name)
            until = repo.take(task, reviewer, now)
            return _view(task, name, until)

        return self._write(work, unique=True)

    def answer(
        self,
        task_id: str,
        reviewer: str,
        *,
        labels: Sequence[str] | None = None,
        answer_content: Any = None,
        seconds: float | None = None,
    ) -> TaskView:
        """Record the reviewer's answer to the task they hold; consolidate when it was the
        last one required. Conflict without a lease, for a second answer or a closed task;
        InvalidRequest for labels that are not the task's."""
        if labels is None and answer_content is None:
            raise InvalidRequest("labels: an answer needs labels (or an A2I template's answer content)")
        if seconds is not None and (isinstance(seconds, bool) or not seconds >= 0):
            raise InvalidRequest(f"seconds: {seconds!r} is not a time spent")
        completed: list[str] = []
        labelled: list[int] = []  # the classifier of a multi-class answer with labels

        def work(session: Session) -> TaskView:
            repo = ReviewRepository(session)
            task, row, name = repo.lock_with_answer(task_id, reviewer)
            mode = Mode(task.mode)
            labelled.clear()
            chosen = check_answer(labels, task.choices or [], mode) if labels is not None else None
            if row is not None and row.status == AnswerStatus.ANSWERED.value:
                raise Conflict(f"{reviewer} already answered review task {task_id}")
            if task.status != TaskStatus.IN_PROGRESS.value or task.queue != Queue.REVIEW.value:
                raise Conflict(f"review task {task_id} is not open for answers (status {task.status})")
            if row is None or row.status != AnswerStatus.LEASED.value:
                raise Conflict(f"{reviewer} holds no lease on review task {task_id}: ask for the next task")
            now = self.clock()
            predicted = predicted_labels(task.prediction, mode)
            row.status = AnswerStatus.ANSWERED.value
            row.labels = builtins.list(chosen) if chosen is not None else None
            row.answer_content = answer_content
            row.accepted = (frozenset(chosen) == predicted) if chosen is not None and predicted else False
            row.time_spent = (
                float(seconds) if seconds is not None else max(0.0, (now - row.leased_at).total_seconds())
            )
            row.answered_at = now
            row.leased_until = None
            task.answered += 1
            if chosen is not None and task.classifier_id is not None and mode is Mode.MULTI_CLASS:
                labelled.append(task.classifier_id)
            if task.answered >= task.required:
                self._consolidate(repo, task, now, row)
                if task.status == TaskStatus.COMPLETED.value:
                    completed.append(task.id)
            session.flush()
            return _view(task, name)

        view = self._write(work)
        self._notify(completed)
        for classifier_id in labelled:
            self.reliability.answered(classifier_id)  # counts; re-estimates now and then, elsewhere
        return view

    def _consolidate(
        self, repo: ReviewRepository, task: ReviewTaskRow, now: datetime, last: ReviewAnswerRow
    ) -> None:
        """Decide ``task``, whose ``last`` answer (just given) made its answers complete. A
        task of one answer has no other: its answers are not read again."""
        answers = [last] if task.answered == 1 else repo.answers(task.id, AnswerStatus.ANSWERED)
        labelled = [
            Answer(row.reviewer, tuple(row.labels), row.time_spent or 0.0, bool(row.accepted))
            for row in answers
            if row.labels is not None
        ]
        if not labelled:  # an A2I template's answers: nothing to vote on
            self._complete(repo, task, None, Consolidation.ANSWERED, None, now, replace=False)
            return
        outcome = consolidation.consolidate(labelled, min(task.required, len(labelled)), Mode(task.mode))
        decided = self._reliable(task, labelled, outcome)
        if decided is not None:
            leases = task.holders > task.answered
            self._complete(repo, task, (decided,), Consolidation.DAWID_SKENE, None, now, leases, False)
        elif outcome.needs_moderator:
            task.queue = Queue.MODERATE.value
            task.consolidation = Consolidation.TIE.value
            repo.release_leases(task)
        elif outcome.labels is not None:
            # leases other than answers (holders - answered) need releasing; no document exists
            # for a task in progress
            leases = task.holders > task.answered
            self._complete(repo, task, outcome.labels, Consolidation.MAJORITY, None, now, leases, False)

    def _reliable(self, task: ReviewTaskRow, labelled: Sequence[Answer], outcome: Outcome) -> str | None:
        """With Dawid–Skene consolidation and an estimate for the task's classifier: the label
        the reviewers' reliabilities give a multi-class task of two or more answers with at
        least the threshold's posterior, when it settles a tie (one of the tied labels) or
        overrules the majority; None when majority vote stands (or a tie goes to the moderator).
        Multi-label tasks keep majority vote (see domain/dawid_skene.py). No database access."""
        policy = self.reliability.policy
        if not policy.enabled or task.classifier_id is None or len(labelled) < 2:
            return None
        if Mode(task.mode) is not Mode.MULTI_CLASS:
            return None
        result = self.reliability.current(task.classifier_id)
        return dawid_skene.decide(result, labelled, outcome, policy.threshold) if result else None

    def _complete(
        self,
        repo: ReviewRepository,
        task: ReviewTaskRow,
        labels: Sequence[str] | None,
        how: Consolidation,
        decided_by: str | None,
        now: datetime,
        leases: bool = True,
        replace: bool = True,
    ) -> None:
        """Complete ``task`` with ``labels``; ``leases``: live leases may remain (released);
        ``replace``: a verified document may exist already (replaced)."""
        task.status = TaskStatus.COMPLETED.value
        task.queue = None
        task.final_labels = builtins.list(labels) if labels is not None else None
        task.consolidation = how.value
        task.decided_by = decided_by
        task.completed_at = now
        if leases:
            repo.release_leases(task)
        if labels is not None and task.classifier_id is not None:
            origin = Origin.FEEDBACK if task.reason == Reason.FEEDBACK.value else Origin.REVIEW
            repo.write_document(task, labels, origin.value, replace)

    def skip(self, task_id: str, reviewer: str) -> None:
        """Put the task the reviewer holds at the back of their own queue (others are not
        affected); its lease is given back. Conflict without a lease."""

        def work(session: Session) -> None:
            repo = ReviewRepository(session)
            task, row, _ = repo.lock_with_answer(task_id, reviewer)
            if row is None or row.status != AnswerStatus.LEASED.value:
                if row is not None and row.status == AnswerStatus.SKIPPED.value:
                    return
                raise Conflict(f"{reviewer} holds no lease on review task {task_id}")
            row.status = AnswerStatus.SKIPPED.value
            row.answered_at = self.clock()  # the skip time orders the skipped tasks
            row.leased_until = None
            task.holders = max(0, task.holders - 1)

        self._write(work)

    def undo(self, reviewer: str) -> TaskView | None:
        """Withdraw the reviewer's most recent answer and lease its task to them again.

        A task that had completed by majority reopens (its verified document is deleted); a
        tie waiting for a moderator goes back to the review queue. None when the reviewer has
        no answer; Conflict when that task was decided by a moderator, stopped or failed."""

        def work(session: Session) -> TaskView | None:
            repo = ReviewRepository(session)
            last = repo.last_answer(reviewer)
            if last is None:
                return None
            task, row, name = repo.lock_with_answer(last.task_id, reviewer)
            if row is None or row.status != AnswerStatus.ANSWERED.value:
                raise Conflict("the last answer changed meanwhile: try again")
            if task.consolidation == Consolidation.MODERATED.value:
                raise Conflict(f"review task {task.id} was decided by a moderator: its answers are final")
            if task.status not in (TaskStatus.IN_PROGRESS.value, TaskStatus.COMPLETED.value):
                raise Conflict(f"review task {task.id} is {task.status}: its answers are final")
            now = self.clock()
            if task.status == TaskStatus.COMPLETED.value:
                repo.delete_document(task.id)
                task.status = TaskStatus.IN_PROGRESS.value
                task.completed_at = None
            task.queue = Queue.REVIEW.value
            task.final_labels = None
            task.consolidation = None
            task.decided_by = None
            task.answered -= 1
            row.status = AnswerStatus.LEASED.value
            row.labels = None
            row.answer_content = None
            row.accepted = None
            row.time_spent = None
            row.answered_at = None
            row.leased_at = now
            row.leased_until = now + timedelta(seconds=task.lease_seconds)
            # holders unchanged: the answer became a lease
            session.flush()
            return _view(task, name, row.leased_until)

        return self._write(work)

    def moderate(self, task_id: str, moderator: str, labels: Sequence[str]) -> TaskView:
        """The moderator's final decision on a task in progress (a tie, feedback, or any other)
        or one completed by majority (overruled). Conflict for stopped or failed tasks."""
        newly: list[str] = []

        def work(session: Session) -> TaskView:
            repo = ReviewRepository(session)
            task, _, name = repo.lock_with_answer(task_id, None)
            mode = Mode(task.mode)
            chosen = check_answer(labels, task.choices or [], mode)
            if task.status not in (TaskStatus.IN_PROGRESS.value, TaskStatus.COMPLETED.value):
                raise Conflict(f"review task {task_id} is {task.status}: nothing to decide")
            votes = Outcome(Status.PENDING, None, {})
            consolidation.moderate(votes, chosen, mode)
            if task.status != TaskStatus.COMPLETED.value:
                newly.append(task.id)
            self._complete(repo, task, chosen, Consolidation.MODERATED, moderator, self.clock())
            session.flush()
            return _view(task, name, answers=repo.answers(task.id))

        view = self._write(work)
        self._notify(newly)
        return view

    def stop(self, task_id: str) -> TaskView:
        """Stop a task in progress (A2I StopHumanLoop): it leaves the queues, leases end (and
        an active-learning pick's pool document goes back to the pool).
        Stopping a stopped task again is a no-op; Conflict for completed or failed ones."""

        def work(session: Session) -> TaskView:
            repo = ReviewRepository(session)
            task, _, name = repo.lock_with_answer(task_id, None)
            if task.status == TaskStatus.IN_PROGRESS.value:
                task.status = TaskStatus.STOPPED.value
                task.queue = None
                task.completed_at = self.clock()
                repo.release_leases(task)
                repo.return_to_pool(task)  # an active-learning pick waits in the pool again
            elif task.status != TaskStatus.STOPPED.value:
                raise Conflict(f"review task {task_id} is {task.status}: it cannot be stopped")
            session.flush()
            return _view(task, name)

        return self._write(work)

    # --- reading -------------------------------------------------------------------------

    def get(self, task_id: str, *, with_answers: bool = False) -> TaskView:
        """A task (NotFound if unknown); its answers only ``with_answers`` (moderators)."""
        with self._reading() as repo:
            task = repo.get(task_id)
            answers = repo.answers(task_id) if with_answers else []
            return _view(task, self._name(repo, task.classifier_id), answers=answers)

    def for_prediction(self, prediction_id: str) -> builtins.list[TaskView]:
        """The tasks made for a logged prediction (routed, or its end-user feedback), oldest
        first, each with its answers: the prediction's review trail (moderators and admins)."""
        with self._reading() as repo:
            rows = repo.of_prediction(prediction_id[:36], MAX_LIST)
            return [
                _view(row, self._name(repo, row.classifier_id), answers=repo.answers(row.id)) for row in rows
            ]

    def list(
        self,
        *,
        classifier: str | None = None,
        status: str | None = None,
        queue: str | None = None,
        reason: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[TaskView]:
        """Tasks newest first, filtered; ``after`` is :func:`page_token` of a page's last task."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidRequest(f"limit: 1 to {MAX_LIST}, not {limit}")
        if status is not None and status not in {s.value for s in TaskStatus}:
            raise InvalidRequest(f"status: unknown value {status!r}")
        if queue is not None and queue not in {q.value for q in Queue}:
            raise InvalidRequest(f"queue: unknown value {queue!r}")
        with self._reading() as repo:
            classifier_id = repo.classifier_id(classifier) if classifier is not None else None
            rows = repo.list(
                classifier_id=classifier_id,
                status=status,
                queue=queue,
                reason=reason,
                limit=limit,
                after=_after(after) if after else None,
            )
            names: dict[int | None, str | None] = {}
            views = []
            for row in rows:
                if row.classifier_id not in names:
                    names[row.classifier_id] = repo.classifier_name(row.classifier_id)
                views.append(_view(row, names[row.classifier_id]))
            return views

    def stats(self, reviewer: str | None = None, classifier: str | None = None) -> QueueStats:
        """Tasks waiting in the review and moderate queues, and the reviewer's answers today
        (UTC) and in all."""
        self._sweep()
        with self._reading() as repo:
            classifier_id = repo.classifier_id(classifier) if classifier is not None else None
            now = self.clock()
            midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
            return QueueStats(
                pending=repo.count_queue(Queue.REVIEW, classifier_id),
                moderate=repo.count_queue(Queue.MODERATE, classifier_id),
                mine_today=repo.count_answers(reviewer, midnight) if reviewer else 0,
                mine_total=repo.count_answers(reviewer) if reviewer else 0,
            )

    def agreement(self, classifier: str) -> dict[str, Any]:
        """How much the classifier's reviewers agree: Fleiss' kappa (tasks with the most common
        number of answers, at least 2), Krippendorff's alpha (all tasks with 2+ answers), each
        label's alpha (chose it: yes/no), the share of answer pairs agreeing, each reviewer's
        agreement with the final labels, and each reviewer's estimated accuracy (``reliability``:
        Dawid–Skene over the multi-class tasks with 2+ answers, the service's cached estimate,
        made now when missing or due, shown even below the tasks consolidation needs; None when
        there are no such tasks). None where a measure is undefined."""
        with self._reading() as repo:
            classifier_id = repo.classifier_id(classifier)
            tasks = repo.answered_tasks(classifier_id)
        units: list[list[frozenset[str]]] = []
        answered: list[list[Answer]] = []
        finals: list[tuple[list[Answer], Outcome]] = []
        labels: set[str] = set()
        for task, rows in tasks:
            answers = [Answer(row.reviewer, tuple(row.labels or ()), row.time_spent or 0.0) for row in rows]
            answered.append(answers)
            units.append([frozenset(answer.labels) for answer in answers])
            labels.update(label for answer in answers for label in answer.labels)
            if task.final_labels is not None and task.status == TaskStatus.COMPLETED.value:
                outcome = Outcome(Status.CONSOLIDATED, tuple(task.final_labels), {})
                finals.append((answers, outcome))
        multi = [unit for unit in units if len(unit) >= 2]
        sizes = Counter(len(unit) for unit in multi)
        fleiss = None
        if sizes:
            raters = max(sizes, key=lambda size: (sizes[size], size))
            same = [unit for unit in multi if len(unit) == raters]
            fleiss = consolidation.fleiss_kappa(consolidation.category_counts(same))
        pairs = agreeing = 0
        for unit in multi:
            for i in range(len(unit)):
                for j in range(i + 1, len(unit)):
                    pairs += 1
                    agreeing += unit[i] == unit[j]
        estimate = self.reliability.latest(classifier_id)
        fitted = estimate.result
        reliability = (
            {
                reviewer: {"accuracy": fitted.accuracy(reviewer), "answers": fitted.answers[reviewer]}
                for reviewer in sorted(fitted.confusion)
            }
            if fitted is not None
            else None
        )
        return {
            "classifier": classifier,
            "tasks": len(units),
            "tasks_with_several_answers": len(multi),
            "answers": sum(len(unit) for unit in units),
            "completed": len(finals),
            "fleiss_kappa": fleiss,
            "fleiss_raters": max(sizes, key=lambda size: (sizes[size], size)) if sizes else None,
            "krippendorff_alpha": consolidation.krippendorff_alpha(multi),
            "pair_agreement": agreeing / pairs if pairs else None,
            "labels": consolidation.label_alpha(answered, sorted(labels)),
            "reviewers": {
                reviewer: {"answers": tally.answers, "agreed": tally.agreed, "share": tally.share}
                for reviewer, tally in consolidation.reviewer_agreement(finals).items()
            },
            "reliability": reliability,
            "reliability_tasks": estimate.tasks,
        }
