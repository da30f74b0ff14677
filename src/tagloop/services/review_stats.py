"""Review activity over time, for the console's review statistics: how many tasks waited at the
end of each UTC day, and how many answers each reviewer gave per day.

Nothing is sampled or stored for this: a task is waiting from its ``created_at`` until its
``completed_at`` (set when it is completed, expired or stopped), so the queue's size at any
past moment follows from the task rows themselves, and answers carry their ``answered_at``.
Only the rows that touch the window are read (two columns each).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import or_, select

from tagloop.domain.review import AnswerStatus, Consolidation
from tagloop.errors import InvalidRequest
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import ReviewAnswerRow, ReviewTaskRow, utcnow

WINDOWS = (7, 14, 30, 90)
"""The windows (days) the page offers; any 1..MAX_DAYS is accepted."""
MAX_DAYS = 366


@dataclass(frozen=True)
class ReviewActivity:
    """A window of UTC days, oldest first, and what happened in each."""

    classifier: str | None
    days: list[date]
    waiting: list[int]
    """Tasks waiting (for reviewers or a moderator) at the end of each day; the last: now."""
    answers: dict[str, list[int]] = field(default_factory=dict)
    """Answers given per reviewer and day (a moderator's decision counts as their answer),
    reviewers with the most answers first."""

    @property
    def total_answers(self) -> int:
        return sum(sum(counts) for counts in self.answers.values())


class ReviewStatistics:
    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.clock = clock

    def activity(self, classifier: str | None = None, days: int = 14) -> ReviewActivity:
        """The last ``days`` UTC days (today included) of one classifier's tasks, or of all."""
        if not 1 <= days <= MAX_DAYS:
            raise InvalidRequest(f"days: 1 to {MAX_DAYS}, not {days}")
        now = self.clock()
        today = now.date()
        window = [today - timedelta(days=back) for back in range(days - 1, -1, -1)]
        start = datetime(window[0].year, window[0].month, window[0].day, tzinfo=UTC)
        ends = [min(start + timedelta(days=index + 1), now) for index in range(days)]
        with self.database.reading() as session:
            classifier_id = (
                ClassifierRepository(session).get(classifier).id if classifier is not None else None
            )
            tasks = select(ReviewTaskRow.created_at, ReviewTaskRow.completed_at).where(
                ReviewTaskRow.created_at <= now,
                or_(ReviewTaskRow.completed_at.is_(None), ReviewTaskRow.completed_at >= start),
            )
            answers = (
                select(ReviewAnswerRow.reviewer, ReviewAnswerRow.answered_at)
                .join(ReviewTaskRow, ReviewTaskRow.id == ReviewAnswerRow.task_id)
                .where(
                    ReviewAnswerRow.status == AnswerStatus.ANSWERED.value,
                    ReviewAnswerRow.answered_at >= start,
                    ReviewAnswerRow.answered_at <= now,
                )
            )
            decisions = select(ReviewTaskRow.decided_by, ReviewTaskRow.completed_at).where(
                ReviewTaskRow.consolidation == Consolidation.MODERATED.value,
                ReviewTaskRow.decided_by.is_not(None),
                ReviewTaskRow.completed_at >= start,
                ReviewTaskRow.completed_at <= now,
            )
            if classifier_id is not None:
                tasks = tasks.where(ReviewTaskRow.classifier_id == classifier_id)
                answers = answers.where(ReviewTaskRow.classifier_id == classifier_id)
                decisions = decisions.where(ReviewTaskRow.classifier_id == classifier_id)
            spans = session.execute(tasks).all()
            given = [*session.execute(answers).all(), *session.execute(decisions).all()]
        created = sorted(row[0] for row in spans)
        completed = sorted(row[1] for row in spans if row[1] is not None)
        waiting = [bisect_right(created, end) - bisect_right(completed, end) for end in ends]
        per_reviewer: dict[str, list[int]] = {}
        for reviewer, answered_at in given:
            if reviewer is None or answered_at is None:  # (the queries leave none out: for the types)
                continue
            index = (answered_at.date() - window[0]).days
            if 0 <= index < days:
                per_reviewer.setdefault(reviewer, [0] * days)[index] += 1
        ranked = sorted(per_reviewer.items(), key=lambda item: (-sum(item[1]), item[0]))
        return ReviewActivity(classifier, window, waiting, dict(ranked))
