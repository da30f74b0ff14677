"""Review queue behaviour on SQLite and on the real PostgreSQL (``database_url`` runs each
test on both): queue order, blind answers, leases and their expiry, skip, undo, consolidation
into verified documents, moderation, expiry, listeners, and 8 reviewers answering at once."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tagloop.domain.records import Mode
from tagloop.domain.review import EXPIRED, NewTask, Queue, TaskStatus
from tagloop.errors import Conflict, InvalidRequest, NotFound
from tagloop.services.review import ReviewService, page_token
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import DocumentRow, ReviewAnswerRow, ReviewTaskRow

CHOICES = ("BILLING", "EMAIL", "NETWORK")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def move(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def app(make_tagloop, database_url):
    return make_tagloop(database_url=database_url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def classifier_id(app) -> int:
    with app.database.transaction() as session:
        return ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id


@pytest.fixture
def review(app, clock) -> ReviewService:
    return ReviewService(app.database, "uncertain", clock=clock)


def task(classifier_id: int, text: str = "printer on fire", **fields) -> NewTask:
    values = {
        "text": text,
        "mode": Mode.MULTI_CLASS,
        "choices": CHOICES,
        "reason": "low_confidence",
        "classifier_id": classifier_id,
        "prediction": {"labels": ["NETWORK", "EMAIL"], "scores": [0.4, 0.35]},
    }
    values.update(fields)
    return NewTask(**values)


def documents(app) -> list[DocumentRow]:
    with app.database.reading() as session:
        return list(session.scalars(select(DocumentRow).order_by(DocumentRow.id)))


def test_queue_order_priority_then_most_uncertain(review, classifier_id):
    ids = review.add_tasks(
        [
            task(classifier_id, "a", priority=0.0, uncertainty=0.9),
            task(classifier_id, "b", priority=1.0, uncertainty=0.1),
            task(classifier_id, "c", priority=1.0, uncertainty=0.5),
            task(classifier_id, "d", priority=0.0, uncertainty=0.2),
        ]
    )
    seen = []
    while (view := review.next_task("ann")) is not None:
        seen.append(view.id)
        review.answer(view.id, "ann", labels=["EMAIL"])
    assert seen == [ids[2], ids[1], ids[0], ids[3]]


def test_queue_order_priority_then_oldest(app, clock, classifier_id):
    review = ReviewService(app.database, "oldest", clock=clock)
    ids = []
    for text, priority, uncertainty in [("a", 0.0, 0.9), ("b", 1.0, 0.1), ("c", 0.0, 0.1), ("d", 1.0, 0.9)]:
        ids += review.add_tasks([task(classifier_id, text, priority=priority, uncertainty=uncertainty)])
        clock.move(1)
    seen = []
    while (view := review.next_task("ann")) is not None:
        seen.append(view.id)
        review.answer(view.id, "ann", labels=["EMAIL"])
    assert seen == [ids[1], ids[3], ids[0], ids[2]]


def test_the_task_view_orders_choices_by_the_models_score(review, classifier_id):
    review.add_tasks([task(classifier_id)])
    view = review.next_task("ann")
    assert view is not None
    assert view.choices == ("NETWORK", "EMAIL", "BILLING")
    assert view.classifier == "desk" and view.status is TaskStatus.IN_PROGRESS and view.queue is Queue.REVIEW


def test_reviewers_answer_blind_and_never_twice(review, classifier_id):
    (task_id,) = review.add_tasks([task(classifier_id, required=3)])
    assert review.next_task("ann").id == task_id
    review.answer(task_id, "ann", labels=["EMAIL"], seconds=4.5)
    with pytest.raises(Conflict):
        review.answer(task_id, "ann", labels=["EMAIL"])
    assert review.next_task("ann") is None  # answered: never again
    view = review.next_task("bob")
    assert view.id == task_id and view.answers == ()  # blind
    assert review.get(task_id).answers == ()
    full = review.get(task_id, with_answers=True)
    ann = next(a for a in full.answers if a.reviewer == "ann")
    assert ann.labels == ("EMAIL",) and ann.seconds == 4.5 and ann.accepted is False
    review.answer(task_id, "bob", labels=["NETWORK"])
    bob = next(a for a in review.get(task_id, with_answers=True).answers if a.reviewer == "bob")
    assert bob.accepted is True  # the model's label


def test_task_ids_are_unique(review, classifier_id):
    review.add_tasks([task(classifier_id, id="t-1")])
    with pytest.raises(Conflict):
        review.add_tasks([task(classifier_id, "other", id="t-2"), task(classifier_id, id="t-1")])
    assert [v.id for v in review.list()] == ["t-1"]
    with pytest.raises(NotFound):
        review.get("t-2")


def test_answer_needs_a_lease_and_known_labels(review, classifier_id):
    (task_id,) = review.add_tasks([task(classifier_id)])
    with pytest.raises(Conflict):
        review.answer(task_id, "ann", labels=["EMAIL"])
    review.next_task("ann")
    with pytest.raises(InvalidRequest, match="'SPAM'"):
        review.answer(task_id, "ann", labels=["SPAM"])
    with pytest.raises(InvalidRequest, match="exactly one"):
        review.answer(task_id, "ann", labels=["EMAIL", "BILLING"])
    with pytest.raises(NotFound):
        review.answer("no-such-task", "ann", labels=["EMAIL"])
    assert review.answer(task_id, "ann", labels=["EMAIL"]).status is TaskStatus.COMPLETED


def test_multi_label_answers_any_subset(review, classifier_id):
    (task_id,) = review.add_tasks(
        [task(classifier_id, mode=Mode.MULTI_LABEL, prediction={"labels": ["EMAIL"], "scores": [0.6]})]
    )
    review.next_task("ann")
    view = review.answer(task_id, "ann", labels=[])
    assert view.status is TaskStatus.COMPLETED and view.final_labels == ()
    (other,) = review.add_tasks([task(classifier_id, "x", mode=Mode.MULTI_LABEL)])
    review.next_task("ann")
    assert review.answer(other, "ann", labels=["EMAIL", "NETWORK"]).final_labels == ("EMAIL", "NETWORK")


def test_a_lease_keeps_others_out_until_it_runs_out(review, clock, classifier_id):
    (task_id,) = review.add_tasks([task(classifier_id, lease_seconds=30)])
    first = review.next_task("ann")
    assert first.id == task_id and first.leased_until == clock.now + timedelta(seconds=30)
    assert review.next_task("bob") is None
    assert review.next_task("ann").id == task_id  # a reload shows the same task
    clock.move(31)
    assert review.next_task("bob").id == task_id  # the lease ran out: released
    with pytest.raises(Conflict):
        review.answer(task_id, "ann", labels=["EMAIL"])
    review.answer(task_id, "bob", labels=["EMAIL"])
    with review.database.reading() as session:
        row = session.get(ReviewTaskRow, task_id)
        assert (row.holders, row.answered) == (1, 1)


def test_skip_goes_to_the_back_for_that_reviewer_only(review, classifier_id):
    first, second = review.add_tasks(
        [
            task(classifier_id, "a", uncertainty=0.9, required=2),
            task(classifier_id, "b", uncertainty=0.1, required=2),
        ]
    )
    assert review.next_task("ann").id == first
    review.skip(first, "ann")
    assert review.next_task("ann").id == second
    assert review.next_task("bob").id == first  # bob is not affected
    review.answer(second, "ann", labels=["EMAIL"])
    assert review.next_task("ann").id == first  # the skipped one, after all others
    with pytest.raises(Conflict):
        review.skip(second, "ann")  # no lease on it


def test_undo_reopens_a_completed_task_and_leases_it_back(review, classifier_id):
    (task_id,) = review.add_tasks([task(classifier_id)])
    assert review.undo("ann") is None
    review.next_task("ann")
    assert review.answer(task_id, "ann", labels=["EMAIL"]).status is TaskStatus.COMPLETED
    assert [d.labels for d in documents(review)] == [["EMAIL"]]
    view = review.undo("ann")
    assert view.id == task_id and view.status is TaskStatus.IN_PROGRESS and view.answered == 0
    assert view.leased_until is not None and documents(review) == []
    assert review.next_task("bob") is None  # still ann's
    assert review.next_task("ann").id == task_id
    review.answer(task_id, "ann", labels=["BILLING"])
    docs = documents(review)
    assert [(d.labels, d.origin, d.split, d.dataset_id, d.review_task_id) for d in docs] == [
        (["BILLING"], "review", "train", None, task_id)
    ]


def test_majority_completes_and_a_tie_goes_to_the_moderator(review, classifier_id):
    majority, tie = review.add_tasks(
        [task(classifier_id, "m", required=3, uncertainty=0.9), task(classifier_id, "t", required=2)]
    )
    for reviewer, label in [("ann", "EMAIL"), ("bob", "EMAIL"), ("cy", "NETWORK")]:
        assert review.next_task(reviewer).id == majority
        view = review.answer(majority, reviewer, labels=[label])
    assert view.status is TaskStatus.COMPLETED and view.final_labels == ("EMAIL",)
    for reviewer, label in [("ann", "EMAIL"), ("bob", "BILLING")]:
        assert review.next_task(reviewer).id == tie
        view = review.answer(tie, reviewer, labels=[label])
    assert view.status is TaskStatus.IN_PROGRESS and view.queue is Queue.MODERATE
    assert review.next_task("cy") is None
    assert review.stats().moderate == 1
    assert review.next_task("mod", queue=Queue.MODERATE).id == tie
    assert review.next_task("ann", queue=Queue.MODERATE).id == tie  # whoever answered it
    assert review.undo("mod") is None  # no answers: nothing to undo
    decided = review.moderate(tie, "mod", ["BILLING"])
    assert decided.status is TaskStatus.COMPLETED and decided.decided_by == "mod"
    assert {a.reviewer for a in decided.answers} == {"ann", "bob"}
    with pytest.raises(Conflict):
        review.undo("bob")  # decided by a moderator: final
    assert sorted((d.review_task_id, tuple(d.labels)) for d in documents(review)) == sorted(
        [(majority, ("EMAIL",)), (tie, ("BILLING",))]
    )


def test_feedback_tasks_are_decided_by_a_moderator(review, classifier_id):
    (task_id,) = review.add_tasks(
        [task(classifier_id, reason="feedback", queue=Queue.MODERATE, feedback={"correct": False})]
    )
    assert review.next_task("ann") is None
    with pytest.raises(InvalidRequest):
        review.moderate(task_id, "mod", ["SPAM"])
    review.moderate(task_id, "mod", ["EMAIL"])
    review.moderate(task_id, "mod", ["BILLING"])  # replaces the verified document
    docs = documents(review)
    assert [(d.labels, d.origin) for d in docs] == [(["BILLING"], "feedback")]


def test_expired_tasks_fail_and_leave_the_queue(review, clock, classifier_id):
    (task_id,) = review.add_tasks([task(classifier_id, lifetime_seconds=60)])
    review.next_task("ann")
    clock.move(61)
    assert review.next_task("bob") is None
    view = review.get(task_id)
    assert view.status is TaskStatus.FAILED and view.failure_code == EXPIRED and view.queue is None
    with pytest.raises(Conflict):
        review.answer(task_id, "ann", labels=["EMAIL"])


def test_stop(review, classifier_id):
    (task_id,) = review.add_tasks([task(classifier_id)])
    review.next_task("ann")
    assert review.stop(task_id).status is TaskStatus.STOPPED
    assert review.stop(task_id).status is TaskStatus.STOPPED
    with pytest.raises(Conflict):
        review.answer(task_id, "ann", labels=["EMAIL"])
    assert review.next_task("bob") is None


def test_listeners_hear_of_completed_tasks_after_commit(review, classifier_id):
    heard = []

    def listener(task_id: str) -> None:
        heard.append((task_id, review.get(task_id).status))  # committed: visible to a new session

    def broken(task_id: str) -> None:
        raise RuntimeError("listener down")

    review.add_listener(broken)
    review.add_listener(listener)
    first, second = review.add_tasks(
        [task(classifier_id, "a", uncertainty=1), task(classifier_id, "b", required=2)]
    )
    review.next_task("ann")
    review.answer(first, "ann", labels=["EMAIL"])
    review.next_task("ann")
    review.answer(second, "ann", labels=["EMAIL"])  # not complete yet
    assert heard == [(first, TaskStatus.COMPLETED)]


def test_list_pages_and_stats(review, clock, classifier_id):
    ids = []
    for i in range(5):
        ids += review.add_tasks([task(classifier_id, f"t{i}")])
        clock.move(1)
    page = review.list(limit=2)
    assert [v.id for v in page] == [ids[4], ids[3]]
    page = review.list(limit=2, after=page_token(page[-1]))
    assert [v.id for v in page] == [ids[2], ids[1]]
    assert [v.id for v in review.list(limit=2, after=page_token(page[-1]))] == [ids[0]]
    with pytest.raises(InvalidRequest):
        review.list(after="garbage")
    view = review.next_task("ann")
    review.answer(view.id, "ann", labels=["EMAIL"])
    stats = review.stats("ann", "desk")
    assert (stats.pending, stats.moderate, stats.mine_today, stats.mine_total) == (4, 0, 1, 1)
    assert [v.id for v in review.list(status="Completed")] == [view.id]


def test_agreement(review, classifier_id):
    ids = review.add_tasks([task(classifier_id, f"t{i}", required=2, uncertainty=i / 10) for i in range(4)])
    answers = {"ann": ["EMAIL", "EMAIL", "NETWORK", "BILLING"], "bob": ["EMAIL", "EMAIL", "NETWORK", "EMAIL"]}
    for reviewer, labels in answers.items():
        for _ in ids:
            view = review.next_task(reviewer)
            review.answer(view.id, reviewer, labels=[labels[ids[::-1].index(view.id)]])
    result = review.agreement("desk")
    assert result["tasks"] == 4 and result["answers"] == 8 and result["completed"] == 3
    assert result["pair_agreement"] == 0.75
    assert result["fleiss_kappa"] is not None and result["krippendorff_alpha"] is not None
    assert result["reviewers"]["ann"] == {"answers": 3, "agreed": 3, "share": 1.0}
    assert set(result["labels"]) == set(CHOICES)


# --- 8 reviewers at once ----------------------------------------------------------------------

REVIEWERS = 8
ANSWERS_EACH = 200


def test_eight_reviewers_at_once_lose_nothing_and_overfill_nothing(app, classifier_id):
    review = app.review
    rng = random.Random(13)
    review.add_tasks(
        [
            task(classifier_id, f"doc {i}", required=rng.choice((1, 2, 3)), uncertainty=rng.random())
            for i in range(1_700)
        ]
    )
    answered: dict[str, list[str]] = {f"r{n}": [] for n in range(REVIEWERS)}
    errors: list[BaseException] = []
    start = threading.Barrier(REVIEWERS)

    def reviewer(name: str) -> None:
        own = random.Random(name)
        start.wait()
        try:
            while len(answered[name]) < ANSWERS_EACH:
                view = review.next_task(name)
                if view is None:
                    return
                review.answer(view.id, name, labels=[own.choice(CHOICES)], seconds=1.0)
                answered[name].append(view.id)
        except BaseException as exc:  # anything reaching a reviewer fails the test
            errors.append(exc)

    threads = [threading.Thread(target=reviewer, args=(name,)) for name in answered]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert all(len(ids) == ANSWERS_EACH for ids in answered.values())
    with app.database.reading() as session:
        stored = Counter(
            (task_id, reviewer)
            for task_id, reviewer in session.execute(
                select(ReviewAnswerRow.task_id, ReviewAnswerRow.reviewer).where(
                    ReviewAnswerRow.status == "answered"
                )
            )
        )
        given = Counter((task_id, name) for name, ids in answered.items() for task_id in ids)
        assert stored == given  # no answer lost, none twice
        tasks = session.execute(
            select(ReviewTaskRow.id, ReviewTaskRow.required, ReviewTaskRow.answered, ReviewTaskRow.status)
        ).all()
        per_task = Counter(task_id for task_id, _ in given)
        for task_id, required, count, status in tasks:
            assert per_task[task_id] == count <= required
            assert (status == "Completed") <= (count == required)
        completed = sum(1 for *_, status in tasks if status == "Completed")
        verified = session.scalar(select(func.count()).select_from(DocumentRow))
        assert verified == completed
