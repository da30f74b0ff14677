"""A seeded tagloop for the console pages of part B (predictions, review statistics, endpoints,
keys): a trained classifier with two versions behind an endpoint, logged predictions of the
real model, a routed prediction answered by two reviewers, an end user's feedback decided by a
moderator, and tasks waiting since earlier days."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, update

from tagloop.app import Tagloop
from tagloop.domain import comprehend
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask
from tagloop.services.feedback import Verdict
from tagloop.services.prediction_log import new_prediction_id
from tagloop.services.training import TrainRequest
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository
from tagloop.storage.tables import PredictionRow, ReviewAnswerRow, ReviewTaskRow, utcnow

TEXTS = (
    "my vpn keeps dropping every few minutes",
    "the printer on floor 3 is jammed again",
    "I was charged twice for the licence this month",
    "cannot log in to the HR portal since yesterday",
    "Excel crashes when I open the budget sheet",
    "mailbox full, cannot send any email",
    "new laptop needed for the starter on Monday",
    "wifi in meeting room B is very slow",
)


@dataclass
class Seeded:
    ids: list[str]
    """The logged predictions, newest first."""
    routed: str
    """A prediction routed to review (low confidence), answered by ana and bob."""
    feedback: str
    """A prediction an end user said was wrong; mo decided it."""
    labels: list[str]


def seed(tagloop: Tagloop, folder: Path, tickets: list[tuple[str, str]]) -> Seeded:
    data = folder / "desk.csv"
    with open(data, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))  # v2: something to pin to
    tagloop.queue.run_now(tagloop.endpoints.create("desk", "desk", "v1")["job_id"])
    _, model = tagloop.predictions.model("desk", "v1")
    desk_id, version_id = _ids(tagloop)
    now = utcnow()
    rows = []
    for index, (text, prediction) in enumerate(
        zip(TEXTS, tagloop.predictions.classify(model, list(TEXTS)), strict=True)
    ):
        rows.append(
            {
                "id": new_prediction_id(),
                "endpoint": "desk",
                "version_id": version_id,
                "text": text,
                "result": comprehend.result(prediction),
                "top_label": prediction.labels[0],
                "top_score": prediction.scores[0],
                "created_at": now - timedelta(hours=3 * index + 1),
            }
        )
    with tagloop.database.transaction() as session:
        session.execute(insert(PredictionRow), rows)
    ids = [row["id"] for row in rows]
    routed, wrong = rows[2], rows[4]
    labels = sorted({label for label, _ in tickets})
    review = tagloop.review
    order = [row["top_label"] for row in (routed,)] + [
        label for label in labels if label != routed["top_label"]
    ]
    (task_id,) = review.add_tasks(
        [
            NewTask(
                text=routed["text"],
                mode=Mode.MULTI_CLASS,
                choices=tuple(labels),
                reason="low_confidence",
                classifier_id=desk_id,
                endpoint="desk",
                version_id=version_id,
                prediction_id=routed["id"],
                prediction={"labels": order, "scores": [routed["top_score"]] + [0.0] * (len(order) - 1)},
                required=2,
            )
        ]
    )
    for reviewer in ("ana", "bob"):
        assert review.next_task(reviewer).id == task_id
        review.answer(task_id, reviewer, labels=["BILLING"], seconds=4.0)
    feedback = tagloop.feedback.on_prediction(
        wrong["id"], Verdict(correct=False, labels=("SOFTWARE",), comment="it is Excel")
    )
    review.moderate(feedback["task_ids"][0], "mo", ["SOFTWARE"])
    # tasks waiting since earlier days, and answers given on them then
    waiting = review.add_tasks(
        [
            NewTask(
                text=f"waiting ticket {n}",
                mode=Mode.MULTI_CLASS,
                choices=tuple(labels),
                reason="audit",
                classifier_id=desk_id,
            )
            for n in range(5)
        ]
    )
    with tagloop.database.transaction() as session:
        for back, task in enumerate(waiting):
            session.execute(
                update(ReviewTaskRow)
                .where(ReviewTaskRow.id == task)
                .values(created_at=now - timedelta(days=back + 1))
            )
        session.execute(
            update(ReviewAnswerRow)
            .where(ReviewAnswerRow.task_id == task_id, ReviewAnswerRow.reviewer == "bob")
            .values(answered_at=now - timedelta(days=2))
        )
    return Seeded(ids, routed["id"], wrong["id"], labels)


def _ids(tagloop: Tagloop) -> tuple[int, int]:
    """The classifier's id and its version v1's."""
    with tagloop.database.reading() as session:
        classifier = ClassifierRepository(session).get("desk")
        return classifier.id, ModelVersionRepository(session).find(classifier.id, "v1").id
