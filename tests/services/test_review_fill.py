"""Filling the review queue from the pool (services/review_fill.py) on SQLite and on the real
PostgreSQL: the strategy's picks become active-learning tasks with priorities by rank and their
documents are marked in the same transaction; a stopped or expired task returns its document;
an answered one becomes a verified document whose text is not pooled again; the model is the
champion, else what an endpoint serves, else the newest; refill tops the queue up once, even
with several processes at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from tagloop.domain.records import Mode
from tagloop.domain.review import TaskStatus
from tagloop.domain.strategies import entropy, margin
from tagloop.errors import InvalidRequest, ResourceUnavailable
from tagloop.services.review import ReviewService
from tagloop.services.review_fill import ReviewFill
from tagloop.services.training import TrainRequest
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import DocumentRow, LoopRow, ModelVersionRow, ReviewTaskRow, utcnow

POOL = [
    "printer on the second floor shows paper jam but there is no paper stuck",
    "cannot log in to the VPN since the password change",
    "new starter needs a laptop and an email account",
    "outlook crashes when opening attachments from the CRM",
    "the wifi in meeting room B is very slow",
    "please install the accounting software on my machine",
    "monitor flickers and the network drive is not reachable",
    "reset my password and unlock my account please",
]


@pytest.fixture
def store(make_tagloop, database_url):
    return make_tagloop(database_url=database_url)


@pytest.fixture
def trained(store, tickets_csv) -> dict:
    return store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))


def filler(store, **options) -> ReviewFill:
    return ReviewFill(store.database, store.models, seed=7, **options)


def pool_state(store) -> dict[str, str | None]:
    with store.database.reading() as session:
        rows = session.execute(
            select(DocumentRow.text, DocumentRow.pool_task_id).where(DocumentRow.split == "pool")
        )
        return {text: task_id for text, task_id in rows}


def test_fill_puts_the_margin_picks_in_the_queue_by_rank_and_marks_them(store, trained):
    store.pool.add_documents("desk", POOL)
    result = filler(store).fill("desk", "margin", 3)
    assert (result["picked"], result["model"], result["version"]) == (3, "newest", trained["version"])
    assert (result["pool_waiting"], result["pool_scored"]) == (8, 8)
    # the picks, by hand: the three smallest gaps between the two best scores
    _, model = store.predictions.model("desk")
    expected = [POOL[i] for i in np.argsort(-margin(model.scores(POOL)), kind="stable")[:3]]
    tasks = [store.review.get(task["task_id"]) for task in result["tasks"]]
    assert [task.text for task in tasks] == expected
    assert [task.priority for task in tasks] == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert all(task.reason == "active_learning" and task.status is TaskStatus.IN_PROGRESS for task in tasks)
    assert all(set(task.choices) == set(model.labels) and task.prediction for task in tasks)
    marked = pool_state(store)
    assert {marked[task.text] for task in tasks} == {task.id for task in tasks}
    assert sum(task_id is not None for task_id in marked.values()) == 3
    assert store.pool.count("desk")["waiting"] == 5
    # the next fill picks among the five still waiting
    again = filler(store).fill("desk", "margin", 10)
    assert again["picked"] == 5 and again["pool_waiting"] == 5
    assert all(task_id is not None for task_id in pool_state(store).values())


def test_a_stopped_or_expired_task_returns_its_document_an_answered_one_is_verified(store, trained):
    store.pool.add_documents("desk", POOL[:3])
    result = filler(store).fill("desk", "entropy", 3, lifetime_seconds=60)
    first, second, third = (task["task_id"] for task in result["tasks"])
    store.review.stop(first)
    state = pool_state(store)
    assert store.review.get(first).text in {text for text, task_id in state.items() if task_id is None}
    # expiry: a service whose clock is past the tasks' lifetime sweeps them
    later = ReviewService(store.database, clock=lambda: utcnow() + timedelta(seconds=120))
    task = store.review.next_task("ann")
    assert task is not None and task.id in (second, third)
    done = store.review.answer(task.id, "ann", labels=[task.choices[0]])
    assert done.status is TaskStatus.COMPLETED
    later.sweep()
    other = third if task.id == second else second
    assert later.get(other).status is TaskStatus.FAILED
    state = pool_state(store)
    assert state[done.text] == done.id  # picked, and now verified
    assert state[store.review.get(other).text] is None and state[store.review.get(first).text] is None
    assert store.pool.count("desk") | {"by_origin": None} == {
        "classifier": "desk",
        "waiting": 2,
        "picked": 1,
        "documents": 3,
        "by_origin": None,
    }
    with store.database.reading() as session:
        verified = session.scalars(select(DocumentRow).where(DocumentRow.origin == "review")).one()
        assert verified.text == done.text
    report = store.pool.add_documents("desk", [done.text.upper()])
    assert report["added"] == 0 and report["duplicates"] == 1


def test_the_model_is_the_champion_else_the_served_version_else_the_newest(store, trained, tickets_csv):
    store.pool.add_documents("desk", POOL)
    newest = store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    assert filler(store).fill("desk", "random", 1)["version"] == newest["version"]
    created = store.endpoints.create("desk-ep", "desk", trained["version"])
    store.queue.run_now(created["job_id"])
    assert filler(store).fill("desk", "random", 1)["model"] == "endpoint"
    with store.database.transaction() as session:
        desk = ClassifierRepository(session).get("desk")
        version_id = session.scalar(
            select(ModelVersionRow.id).where(ModelVersionRow.name == newest["version"])
        )
        session.add(LoopRow(classifier_id=desk.id, active_version_id=version_id, settings={}))
    result = filler(store).fill("desk", "random", 1)
    assert (result["model"], result["version"]) == ("champion", newest["version"])


def test_bad_fills_are_refused_with_a_reason(store, tickets_csv):
    with store.database.transaction() as session:
        ClassifierRepository(session).add("empty", Mode.MULTI_CLASS.value, "|")
    store.pool.add_documents("empty", ["text"])
    with pytest.raises(ResourceUnavailable, match="no trained model version"):
        filler(store).fill("empty", "margin", 1)
    store.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with pytest.raises(InvalidRequest, match="no documents waiting"):
        filler(store).fill("desk", "margin", 1)
    store.pool.add_documents("desk", POOL)
    with pytest.raises(InvalidRequest, match="unknown strategy"):
        filler(store).fill("desk", "best-guess", 1)
    for count in (0, 10_001, True):
        with pytest.raises(InvalidRequest, match="count"):
            filler(store).fill("desk", "margin", count)
    assert all(task_id is None for task_id in pool_state(store).values())


def test_fills_running_at_once_never_pick_a_document_twice(store, trained):
    store.pool.add_documents("desk", [f"{text} (case {i})" for i in range(5) for text in POOL])
    results: list[dict] = []
    errors: list[BaseException] = []

    def fill(seed: int) -> None:
        try:
            results.append(ReviewFill(store.database, store.models, seed=seed).fill("desk", "random", 15))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    picked = [task["document_id"] for result in results for task in result["tasks"]]
    assert len(picked) == len(set(picked)) and len(picked) <= 40
    with store.database.reading() as session:
        tasks = session.scalars(
            select(ReviewTaskRow.id).where(ReviewTaskRow.reason == "active_learning")
        ).all()
        marked = session.scalars(
            select(DocumentRow.pool_task_id).where(DocumentRow.pool_task_id.is_not(None))
        ).all()
    assert sorted(tasks) == sorted(marked) and len(tasks) == len(picked)


def test_refill_tops_the_queue_up_when_it_runs_low(store, trained):
    store.pool.add_documents("desk", [f"{text} (case {i})" for i in range(3) for text in POOL])
    fill = filler(store)
    assert fill.refill() == {"classifiers": {}}  # no loop: nothing to do
    with store.database.transaction() as session:
        desk = ClassifierRepository(session).get("desk")
        session.add(
            LoopRow(
                classifier_id=desk.id,
                settings={"refill_below": 5, "refill_count": 3, "refill_strategy": "least-confidence"},
            )
        )
    assert fill.refill()["classifiers"]["desk"]["picked"] == 3
    fill.tick()  # the loop ticker's part: 3 waiting < 5
    assert fill.refill() == {"classifiers": {}}  # 6 waiting: enough
    assert store.review.stats(classifier="desk").pending == 6
    # several processes refilling at once top it up by one fill only
    for task in store.review.list(classifier="desk"):
        store.review.stop(task.id)
    fills = [filler(store) for _ in range(3)]
    threads = [threading.Thread(target=one.refill) for one in fills]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # each fill re-checks under the pool lock that the queue is still low and its picks still
    # waiting: the first fill's 3 (fills that scored the same picks add none), or 3 more; never 9
    pending = store.review.stats(classifier="desk").pending
    assert pending in (3, 6)
    with store.database.reading() as session:
        open_tasks = session.scalars(select(ReviewTaskRow.id).where(ReviewTaskRow.queue == "review")).all()
        marked = session.scalars(
            select(DocumentRow.pool_task_id).where(DocumentRow.pool_task_id.in_(open_tasks))
        )
        assert len(set(marked)) == len(open_tasks) == pending


@pytest.mark.parametrize("name", ["coreset", "cluster-margin", "badge", "density"])
def test_batch_aware_strategies_fill_from_the_models_features(store, trained, name):
    copies = [f"{text}." for text in POOL]  # near-duplicates of each pool text
    store.pool.add_documents("desk", POOL + copies)
    result = filler(store).fill("desk", name, 4)
    assert result["picked"] == 4 and result["strategy"] == name
    texts = [store.review.get(task["task_id"]).text for task in result["tasks"]]
    assert len({text.rstrip(".") for text in texts}) == 4  # no text picked with its near-copy


def test_a_multi_label_classifier_gets_tasks_with_its_assigned_labels(store, tickets, write_csv):
    rows = []
    for i, (label, text) in enumerate(tickets):
        other_label, other_text = tickets[(i + 7) % len(tickets)]
        joined = i % 3 == 0 and other_label != label
        rows.append(
            [f"{label}|{other_label}" if joined else label, f"{text} {other_text}" if joined else text]
        )
    store.training.train(
        TrainRequest(classifier="ml", data=str(write_csv(rows, "ml.csv")), mode=Mode.MULTI_LABEL)
    )
    store.pool.add_documents("ml", POOL)
    result = filler(store).fill("ml", "entropy", 4)
    _, model = store.predictions.model("ml")
    scores = model.scores(POOL)
    expected = [POOL[i] for i in np.argsort(-entropy(scores, multi_label=True), kind="stable")[:4]]
    tasks = [store.review.get(task["task_id"]) for task in result["tasks"]]
    assert [task.text for task in tasks] == expected
    for task in tasks:
        row = scores[POOL.index(task.text)]
        assigned = {model.labels[j] for j in model.decide(row[None, :])[0]}
        assert task.mode is Mode.MULTI_LABEL and set(task.prediction["labels"]) == assigned
