"""Request and response bodies of the ``/v1`` review routes (snake_case JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from tagloop.api.schemas import Name
from tagloop.domain.review import Queue, TaskStatus

MAX_LABELS_IN_ANSWER = 1_000
"""The most labels one answer may name (a classifier has at most TAGLOOP_MAX_LABELS_MULTI_CLASS
labels, 1,000 by default): a longer list is refused before the service sees it."""
MAX_LABEL_CHARS = 5_000  # TAGLOOP_MAX_LABEL_CHARS' default: no label of a classifier is longer
MAX_SECONDS = 7 * 24 * 3600.0

Label = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_CHARS)]
Labels = Annotated[
    list[Label],
    Field(max_length=MAX_LABELS_IN_ANSWER, description="Label names, each one of the task's `choices`."),
]


class NextRequest(BaseModel):
    classifier: Name | None = Field(None, description="Only tasks of this classifier.")
    queue: Queue = Field(
        Queue.REVIEW, description="`review`, or `moderate` (ties and feedback: scope `admin`)."
    )


class AnswerRequest(BaseModel):
    labels: Labels
    seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="Time spent on the task; default: since it was handed out.",
    )


class ModerateRequest(BaseModel):
    labels: Labels


class AnswerOut(BaseModel):
    reviewer: str = Field(description="A web user's name or an API key's access key id.")
    status: str = Field(description="leased, answered, skipped or released.")
    labels: list[str] | None
    answer_content: Any = Field(None, description="An A2I template's answer, when there is one.")
    accepted: bool | None = Field(description="Whether the answer was the model's label.")
    seconds: float | None
    leased_at: datetime
    answered_at: datetime | None
    role: str


class TaskOut(BaseModel):
    id: str
    classifier: str | None
    endpoint: str | None
    text: str
    mode: str
    choices: list[str] = Field(description="The model's labels first, best first, then the rest.")
    prediction: dict[str, Any] | None = Field(description='{"labels": [...], "scores": [...]}, best first.')
    reason: str = Field(description="low_confidence, margin, audit, label, feedback, a2i...")
    priority: float
    required: int = Field(description="Answers the task needs (1-3).")
    answered: int
    status: TaskStatus
    queue: Queue | None = Field(description="review, moderate, or null once it left the queues.")
    created_at: datetime
    expires_at: datetime | None
    leased_until: datetime | None = Field(description="The caller's lease, on a task handed out to them.")
    final_labels: list[str] | None
    feedback: dict[str, Any] | None
    loop_name: str | None = Field(description="The A2I human loop's name, for a loop.")
    consolidation: str | None = Field(description="majority, tie, moderated or answered.")
    decided_by: str | None
    failure_code: str | None
    failure_reason: str | None
    completed_at: datetime | None
    version_id: int | None
    prediction_id: str | None
    answers: list[AnswerOut] | None = Field(
        None, description="Every reviewer's answer: only for admin keys (reviewers answer blind)."
    )


class TaskList(BaseModel):
    tasks: list[TaskOut]
    next_page: str | None = Field(description="Pass as `after` for the next page; null on the last.")


class StatsOut(BaseModel):
    pending: int = Field(description="Tasks in the review queue.")
    moderate: int = Field(description="Tasks waiting for a moderator.")
    mine_today: int = Field(description="The caller's answers since midnight UTC.")
    mine_total: int


class ReviewerAgreementOut(BaseModel):
    answers: int
    agreed: int = Field(description="Answers equal to the task's final labels.")
    share: float | None


class AgreementOut(BaseModel):
    classifier: str
    tasks: int
    tasks_with_several_answers: int
    answers: int
    completed: int
    fleiss_kappa: float | None
    fleiss_raters: int | None
    krippendorff_alpha: float | None
    pair_agreement: float | None = Field(description="Share of answer pairs of one task that agree.")
    labels: dict[str, float | None] = Field(description="Each label's Krippendorff alpha (chose it: yes/no).")
    reviewers: dict[str, ReviewerAgreementOut] = Field(
        description="Each reviewer's agreement with the final labels."
    )
