"""Dawid–Skene consolidation in the review service (TAGLOOP_REVIEW_CONSOLIDATION=dawid-skene), on
SQLite and on the real PostgreSQL: a tie goes to the moderator until the classifier has enough
answered history, then reviewer reliabilities decide it; agreement shows them."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask, Queue, TaskStatus
from tagloop.errors import InvalidRequest
from tagloop.services.reliability import ReliabilityPolicy
from tagloop.services.review import ReviewService
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import DocumentRow

CHOICES = ("BILLING", "EMAIL", "NETWORK")
POLICY = ReliabilityPolicy("dawid-skene", 30, threshold=0.9, refresh_answers=10**6, refresh_seconds=1e9)


@pytest.fixture
def app(make_tagloop, database_url):
    return make_tagloop(database_url=database_url)


@pytest.fixture
def classifier_id(app) -> int:
    with app.database.transaction() as session:
        return ClassifierRepository(session).add("desk", Mode.MULTI_CLASS.value, "|").id


def task(classifier_id: int, text: str, required: int, mode: Mode = Mode.MULTI_CLASS) -> NewTask:
    fields = {"reason": "low_confidence", "classifier_id": classifier_id, "required": required}
    return NewTask(text=text, mode=mode, choices=CHOICES, **fields)


def history(review: ReviewService, classifier_id: int, count: int, seed: int) -> None:
    """``count`` tasks answered by two careful reviewers (right 95% of the time) and a spammer
    (a random label each time)."""
    rng = random.Random(seed)
    truth = {f"h{seed}-{i}": rng.choice(CHOICES) for i in range(count)}
    review.add_tasks([task(classifier_id, text, 3) for text in truth])
    for reviewer in ("good1", "good2", "spam"):
        while (view := review.next_task(reviewer)) is not None:
            true = truth[view.text]
            rng = random.Random(f"{view.text}/{reviewer}")  # whatever order the queue hands tasks out
            if reviewer == "spam":
                label = rng.choice(CHOICES)
            else:
                label = true if rng.random() < 0.95 else rng.choice([c for c in CHOICES if c != true])
            review.answer(view.id, reviewer, labels=[label])


def tie(review: ReviewService, classifier_id: int, text: str, answers: dict[str, str]):
    (task_id,) = review.add_tasks([task(classifier_id, text, len(answers))])
    for reviewer, label in answers.items():
        assert review.next_task(reviewer).id == task_id
        view = review.answer(task_id, reviewer, labels=[label])
    return view


def test_a_tie_goes_to_the_moderator_until_there_is_history_then_reliability_decides(app, classifier_id):
    review = ReviewService(app.database, reliability=POLICY)
    empty = review.reliability.refresh(classifier_id)
    assert empty.result is None and not empty.usable  # no history at all
    before = tie(review, classifier_id, "first tie", {"good1": "EMAIL", "spam": "NETWORK"})
    assert before.queue is Queue.MODERATE and before.consolidation == "tie"

    history(review, classifier_id, 20, seed=1)
    estimate = review.reliability.refresh(classifier_id)
    assert estimate.tasks == 21 and not estimate.usable  # with the tie; below min_tasks
    still = tie(review, classifier_id, "second tie", {"good1": "EMAIL", "spam": "NETWORK"})
    assert still.queue is Queue.MODERATE

    history(review, classifier_id, 20, seed=2)
    estimate = review.reliability.refresh(classifier_id)
    assert estimate.tasks == 42 and estimate.usable and estimate.result is not None
    decided = tie(review, classifier_id, "third tie", {"good1": "EMAIL", "spam": "NETWORK"})
    assert decided.status is TaskStatus.COMPLETED and decided.final_labels == ("EMAIL",)
    assert decided.consolidation == "dawid_skene" and decided.decided_by is None
    with app.database.reading() as session:
        document = session.scalars(select(DocumentRow).where(DocumentRow.review_task_id == decided.id)).one()
        assert document.labels == ["EMAIL"] and document.origin == "review"
    # undo reopens a task decided by reliabilities, as one decided by majority; answered again
    reopened = review.undo("spam")
    assert reopened.id == decided.id and reopened.status is TaskStatus.IN_PROGRESS
    assert reopened.consolidation is None
    again = review.answer(decided.id, "spam", labels=["NETWORK"])
    assert again.consolidation == "dawid_skene" and again.final_labels == ("EMAIL",)

    # a reviewer without history adds no evidence: the tie goes to the moderator
    unknown = tie(review, classifier_id, "fourth tie", {"newbie": "EMAIL", "good2": "NETWORK"})
    assert unknown.queue is Queue.MODERATE
    # two careful reviewers disagreeing: not sure enough, the moderator decides
    unsure = tie(review, classifier_id, "fifth tie", {"good1": "EMAIL", "good2": "NETWORK"})
    assert unsure.queue is Queue.MODERATE and unsure.consolidation == "tie"

    # the same history with majority vote: the same tie goes to the moderator
    majority = ReviewService(app.database)
    sixth = tie(majority, classifier_id, "sixth tie", {"good1": "EMAIL", "spam": "NETWORK"})
    assert sixth.queue is Queue.MODERATE

    result = review.agreement("desk")
    reliability = result["reliability"]
    assert result["reliability_tasks"] == 42  # the estimate in use (refreshed every 10**6 answers)
    assert reliability["good1"]["accuracy"] > 0.85 > 0.6 > reliability["spam"]["accuracy"]
    assert reliability["good1"]["answers"] >= 40


def test_estimates_are_refreshed_in_the_background_every_n_answers_not_per_answer(app, classifier_id):
    policy = ReliabilityPolicy("dawid-skene", 30, refresh_answers=40, refresh_seconds=1e9)
    review = ReviewService(app.database, reliability=policy)
    history(review, classifier_id, 30, seed=4)  # 90 answers
    review.reliability.join(timeout=60)
    made = review.reliability.estimates_made
    assert 1 <= made <= 3  # the first answer (none yet), then at most every 40 answers
    if review.reliability.current(classifier_id) is None:  # the last refresh came before task 30
        tie(review, classifier_id, "t", {"good1": "EMAIL", "good2": "EMAIL"})  # more answers
        for _ in range(40):
            review.reliability.answered(classifier_id)
        review.reliability.join(timeout=60)
    assert review.reliability.current(classifier_id) is not None


def test_multi_label_tasks_keep_majority_vote(app, classifier_id):
    review = ReviewService(app.database, reliability=POLICY)
    history(review, classifier_id, 30, seed=3)
    assert review.reliability.refresh(classifier_id).usable
    (task_id,) = review.add_tasks([task(classifier_id, "multi", 2, Mode.MULTI_LABEL)])
    for reviewer, labels in (("good1", ["EMAIL"]), ("spam", ["NETWORK"])):
        review.next_task(reviewer)
        view = review.answer(task_id, reviewer, labels=labels)
    assert view.queue is Queue.MODERATE and view.consolidation == "tie"
    assert review.agreement("desk")["reliability_tasks"] == 30  # multi-label tasks left out
    assert ReviewService(app.database).agreement("desk")["reliability_tasks"] == 30  # majority too


def test_the_policy_is_checked(app):
    with pytest.raises(InvalidRequest):
        ReliabilityPolicy("wisdom")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        ReliabilityPolicy("dawid-skene", threshold=0.5)
    with pytest.raises(InvalidRequest):
        ReliabilityPolicy("dawid-skene", min_tasks=0)
    assert app.review.reliability.policy.method == "majority"  # the default setting
