"""Review activity over time: the queue's size at the end of each UTC day (from the tasks'
creation and completion times) and answers per reviewer and day, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask
from tagloop.errors import InvalidRequest, NotFound
from tagloop.services.review_stats import ReviewStatistics
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import ReviewAnswerRow, ReviewTaskRow

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def day(back: int, hour: int = 10) -> datetime:
    return datetime(2026, 12, 1, hour, tzinfo=UTC) - timedelta(days=back)


def test_queue_size_and_answers_per_day(make_tagloop, database_url):
    tagloop = make_tagloop(database_url=database_url)
    with tagloop.database.transaction() as session:
        desk = ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id
        other = ClassifierRepository(session).add("other", Mode.MULTI_CLASS.value, "|").id
    review = tagloop.review
    new = {"mode": Mode.MULTI_CLASS, "choices": ("A", "B"), "reason": "audit"}
    ids = review.add_tasks([NewTask(text=f"t{n}", classifier_id=desk, **new) for n in range(4)])
    (elsewhere,) = review.add_tasks([NewTask(text="x", classifier_id=other, **new)])
    review.answer(review.next_task("ana").id, "ana", labels=["A"])  # completes one (1 answer needed)
    review.answer(review.next_task("bob").id, "bob", labels=["B"])
    done = [task for task in [*ids, elsewhere] if review.get(task).completed_at is not None]
    assert len(done) == 2
    # when things happened: created 4, 3, 2, 0 days back; one completed 1 day back, one today
    created = dict(zip(ids, (day(4), day(3), day(2), day(0, 9)), strict=True)) | {elsewhere: day(1)}
    with tagloop.database.transaction() as session:
        for task, moment in created.items():
            session.execute(update(ReviewTaskRow).where(ReviewTaskRow.id == task).values(created_at=moment))
        for task, back in zip(sorted(done), (1, 0), strict=True):
            completed = day(back, 12)
            session.execute(
                update(ReviewTaskRow).where(ReviewTaskRow.id == task).values(completed_at=completed)
            )
            session.execute(
                update(ReviewAnswerRow).where(ReviewAnswerRow.task_id == task).values(answered_at=completed)
            )
    stats = ReviewStatistics(tagloop.database, clock=lambda: NOW)
    everything = stats.activity(days=7)
    assert everything.days == [date(2026, 11, 25) + timedelta(days=n) for n in range(7)]
    opened = sorted(created.values())
    closed = {task: day(back, 12) for task, back in zip(sorted(done), (1, 0), strict=True)}
    expected = []
    for index in range(7):
        end = min(datetime(2026, 11, 26, tzinfo=UTC) + timedelta(days=index), NOW)
        expected.append(
            sum(1 for moment in opened if moment <= end)
            - sum(1 for moment in closed.values() if moment <= end)
        )
    assert everything.waiting == expected and everything.waiting[-1] == 3
    answered = everything.answers
    reviewers = {row.reviewer for task in done for row in [*_answers(tagloop, task)]}
    assert set(answered) == reviewers == {"ana", "bob"}
    assert sum(sum(counts) for counts in answered.values()) == 2 == everything.total_answers
    assert sorted(counts.index(1) for counts in answered.values()) == [5, 6]  # yesterday and today
    only_other = stats.activity("other", days=7)
    assert only_other.waiting[-1] == (0 if elsewhere in done else 1)
    short = stats.activity("desk", days=1)
    assert short.days == [date(2026, 12, 1)] and len(short.waiting) == 1
    with pytest.raises(InvalidRequest):
        stats.activity(days=0)
    with pytest.raises(NotFound):
        stats.activity("nope")


def _answers(tagloop, task_id: str):
    from sqlalchemy import select

    with tagloop.database.reading() as session:
        return list(session.scalars(select(ReviewAnswerRow).where(ReviewAnswerRow.task_id == task_id)))
