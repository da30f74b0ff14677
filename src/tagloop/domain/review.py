"""Review value types shared by routing, feedback, the review service and A2I.

Stand-in written by the routing helper exactly as REVIEW_API.md specifies ``NewTask``,
``Queue`` and ``TaskStatus``; review-core's version of this module (with ``TaskView``,
``QueueStats`` ...) replaces it when the branches are merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tagloop.domain.records import Mode


class TaskStatus(StrEnum):
    """A review task's status, in A2I's words."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    STOPPED = "Stopped"
    STOPPING = "Stopping"
    FAILED = "Failed"


class Queue(StrEnum):
    """Who picks a task up next (``review_tasks.queue``)."""

    REVIEW = "review"
    MODERATE = "moderate"


@dataclass(frozen=True)
class NewTask:
    """What routing, feedback and A2I create."""

    text: str
    mode: Mode
    choices: tuple[str, ...]
    reason: str
    classifier_id: int | None = None
    endpoint: str | None = None
    version_id: int | None = None
    prediction_id: str | None = None
    prediction: dict[str, Any] | None = None
    priority: float = 0.0
    uncertainty: float = 0.0
    required: int = 1
    lease_seconds: int = 300
    lifetime_seconds: int | None = None
    queue: Queue = Queue.REVIEW
    feedback: dict[str, Any] | None = None
    loop_name: str | None = None
    flow_definition_id: int | None = None
    input_content: Any = None
    id: str | None = None
