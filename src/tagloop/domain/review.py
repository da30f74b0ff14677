"""Review tasks as the rest of tagloop sees them: what routing, feedback and A2I create
(:class:`NewTask`), what pages, the API and the CLI show (:class:`TaskView`), and the checks
on a reviewer's labels. Pure values; storage and the service live elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tagloop.domain.consolidation import MAX_ANSWERS
from tagloop.domain.consolidation import _check_labels as check_labels
from tagloop.domain.records import Mode
from tagloop.errors import InvalidRequest


class TaskStatus(StrEnum):
    """A task's status, in A2I's words (a human loop's HumanLoopStatus)."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    STOPPED = "Stopped"
    STOPPING = "Stopping"
    FAILED = "Failed"


class Queue(StrEnum):
    """Who picks a task up next (``review_tasks.queue``; NULL: nobody)."""

    REVIEW = "review"
    MODERATE = "moderate"


class AnswerStatus(StrEnum):
    """A reviewer's hold on a task (``review_answers.status``)."""

    LEASED = "leased"
    ANSWERED = "answered"
    SKIPPED = "skipped"
    RELEASED = "released"


class Consolidation(StrEnum):
    """How a task's final labels came about (``review_tasks.consolidation``)."""

    MAJORITY = "majority"
    TIE = "tie"
    MODERATED = "moderated"
    ANSWERED = "answered"
    """An A2I loop whose answers are template content, not labels: nothing to vote on."""


EXPIRED = "Expired"
"""A2I's FailureCode of a human loop whose TaskAvailabilityLifetimeInSeconds ran out."""


@dataclass(frozen=True)
class NewTask:
    """A task to create: what routing, feedback and A2I hand to the review service."""

    text: str
    mode: Mode
    choices: tuple[str, ...]
    """Labels reviewers choose from (the classifier's labels)."""
    reason: str
    """A domain.routing.Reason value, or "feedback", "a2i"..."""
    classifier_id: int | None = None
    endpoint: str | None = None
    version_id: int | None = None
    prediction_id: str | None = None
    prediction: dict[str, Any] | None = None
    """``{"labels": [...best first], "scores": [...]}``."""
    priority: float = 0.0
    """Higher first."""
    uncertainty: float = 0.0
    """1 - the best score."""
    required: int = 1
    """Answers needed, 1..3 (A2I's TaskCount)."""
    lease_seconds: int = 300
    """How long a reviewer holds a task handed out (A2I's TaskTimeLimitInSeconds)."""
    lifetime_seconds: int | None = None
    """A2I's TaskAvailabilityLifetimeInSeconds: after it, the task fails as Expired."""
    queue: Queue = Queue.REVIEW
    """Feedback tasks go straight to MODERATE."""
    feedback: dict[str, Any] | None = None
    """``{"correct": bool, "labels": [...], "comment": str, "source": ...}``."""
    loop_name: str | None = None
    flow_definition_id: int | None = None
    input_content: Any = None
    id: str | None = None
    """Given by the caller (routing answers with it before the row exists)."""

    def check(self) -> None:
        """Raise InvalidRequest for a task that cannot be stored."""
        if not isinstance(self.text, str):
            raise InvalidRequest("text: expected a string")
        if isinstance(self.required, bool) or not 1 <= self.required <= MAX_ANSWERS:
            raise InvalidRequest(
                f"required: answers per task must be 1 to {MAX_ANSWERS}, not {self.required!r}"
            )
        if self.lease_seconds <= 0:
            raise InvalidRequest(f"lease_seconds: must be positive, not {self.lease_seconds!r}")
        if self.lifetime_seconds is not None and self.lifetime_seconds <= 0:
            raise InvalidRequest(f"lifetime_seconds: must be positive, not {self.lifetime_seconds!r}")
        if len(set(self.choices)) != len(self.choices):
            raise InvalidRequest("choices: a label is listed twice")


@dataclass(frozen=True)
class AnswerView:
    """One reviewer's answer as moderators and admins see it."""

    reviewer: str
    status: str
    labels: tuple[str, ...] | None
    answer_content: Any
    accepted: bool | None
    seconds: float | None
    leased_at: datetime
    answered_at: datetime | None
    role: str = "reviewer"


@dataclass(frozen=True)
class TaskView:
    """A task as pages, the API and the CLI show it."""

    id: str
    classifier: str | None
    endpoint: str | None
    text: str
    mode: Mode
    choices: tuple[str, ...]
    """Ordered by the model's score, best first, then the rest."""
    prediction: dict[str, Any] | None
    reason: str
    priority: float
    required: int
    answered: int
    status: TaskStatus
    queue: Queue | None
    created_at: datetime
    expires_at: datetime | None
    leased_until: datetime | None
    """This reviewer's lease, when handed out by next_task."""
    final_labels: tuple[str, ...] | None
    feedback: dict[str, Any] | None
    loop_name: str | None
    flow_definition_id: int | None
    input_content: Any
    answers: tuple[AnswerView, ...] = ()
    """Only for moderators and admins (reviewers answer blind)."""
    consolidation: str | None = None
    decided_by: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    completed_at: datetime | None = None
    version_id: int | None = None
    prediction_id: str | None = None


@dataclass(frozen=True)
class QueueStats:
    pending: int
    """Tasks in the review queue."""
    moderate: int
    """Tasks waiting for a moderator."""
    mine_today: int
    """The reviewer's answers since midnight UTC."""
    mine_total: int


def ordered_choices(choices: Sequence[str], prediction: dict[str, Any] | None) -> tuple[str, ...]:
    """``choices`` with the model's labels first, best first, then the rest in their order."""
    predicted = [str(label) for label in (prediction or {}).get("labels") or []]
    known = set(choices)
    first = [label for label in dict.fromkeys(predicted) if label in known]
    seen = set(first)
    return tuple(first + [label for label in choices if label not in seen])


def predicted_labels(prediction: dict[str, Any] | None, mode: Mode) -> frozenset[str] | None:
    """The labels the model gave: its best class (multi-class) or its assigned labels."""
    labels = (prediction or {}).get("labels")
    if not isinstance(labels, list):
        return None
    if mode is Mode.MULTI_CLASS:
        return frozenset(labels[:1]) if labels else None
    return frozenset(str(label) for label in labels)


def check_answer(
    labels: Sequence[str], choices: Sequence[str], mode: Mode, who: str = "labels"
) -> tuple[str, ...]:
    """A reviewer's or moderator's labels, checked: each one of ``choices`` (when the task has
    choices), none twice, exactly one in multi-class mode. Raises InvalidRequest naming the
    bad label."""
    if isinstance(labels, str) or not all(isinstance(label, str) for label in labels):
        raise InvalidRequest(f"{who}: expected a list of label names")
    chosen = tuple(labels)
    if choices:
        known = set(choices)
        for label in chosen:
            if label not in known:
                raise InvalidRequest(f"{who}: {label!r} is not one of this task's labels")
    return check_labels(chosen, mode, who)
