"""End-user feedback: a person says a prediction was right or wrong, or sends texts the model
should be checked on; each becomes a review task in the moderators' queue (reason
``feedback``), whose decision is final.

Two forms:

- on a logged prediction (``prediction_id``): the task carries the text and result the
  prediction log kept. An id the log does not hold is a :class:`NotFound` naming it (also when
  it was deleted by retention); with ``TAGLOOP_LOG_PREDICTIONS`` or
  ``TAGLOOP_LOG_PREDICTION_TEXT`` off there is nothing to attach, and the error names the
  setting. The log writes within a fraction of a second: an id made in the last seconds and
  not yet written is waited for briefly.
- on texts (``classifier`` with ``sentence`` or ``sentences``, what the seed workflow's
  feedback API and its feedback files send): each text is classified now with what the
  classifier serves (its first endpoint in service, else its newest trained version) and
  the task carries that prediction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tagloop.domain.comprehend import scored
from tagloop.domain.limits import over_limit, utf8_size_over
from tagloop.domain.predictions import Prediction
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask, Queue
from tagloop.domain.routing import Reason, priority
from tagloop.errors import InvalidRequest, LimitExceeded, NotFound
from tagloop.services.endpoints import IN_SERVICE, EndpointService
from tagloop.services.predictions import PredictionService
from tagloop.services.routing import new_task_id
from tagloop.settings import Settings
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository
from tagloop.storage.tables import ClassifierRow, PredictionRow

MAX_COMMENT = 5_000  # characters
RECENT_SECONDS = 60.0  # an id this young may still be on its way to the log (its process starting)
WAIT_SECONDS = 10.0  # how long such an id is waited for


@dataclass(frozen=True)
class Verdict:
    """What the end user said about a prediction."""

    correct: bool | None = None
    labels: tuple[str, ...] = ()
    comment: str | None = None


class FeedbackService:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        predictions: PredictionService,
        endpoints: EndpointService,
        write: Callable[[Sequence[NewTask]], Any],
    ) -> None:
        self.database = database
        self.settings = settings
        self.predictions = predictions
        self.endpoints = endpoints
        self.write = write  # ReviewService.add_tasks: one transaction

    # ---- on a logged prediction ----------------------------------------------------------
    def on_prediction(self, prediction_id: str, verdict: Verdict) -> dict[str, Any]:
        """A moderator task for the end user's verdict on a logged prediction."""
        if not self.settings.log_predictions:
            raise InvalidRequest(
                "feedback by prediction_id needs logged predictions: this server has "
                "TAGLOOP_LOG_PREDICTIONS=false (send the text with `classifier` and `sentence`)"
            )
        _check_verdict(verdict)
        row = self._logged(prediction_id)
        if row.text is None:
            raise InvalidRequest(
                f"prediction {prediction_id!r} was logged without its text "
                "(TAGLOOP_LOG_PREDICTION_TEXT=false): send the text with `classifier` and `sentence`"
            )
        mode, entries = scored(row.result)
        with self.database.reading() as session:
            version = ModelVersionRepository(session).get(row.version_id) if row.version_id else None
            classifier = session.get(ClassifierRow, version.classifier_id) if version else None
            choices = tuple(version.labels) if version else tuple(name for name, _ in entries)
        unknown = [label for label in verdict.labels if label not in choices]
        if unknown:
            raise InvalidRequest(
                f"labels: {unknown[0]!r} is not a label of the model (known: {', '.join(choices)})"
            )
        labels, scores = [name for name, _ in entries], [score for _, score in entries]
        task = _task(
            row.text,
            Prediction(labels, scores, mode),
            choices,
            verdict,
            source="prediction",
            classifier_id=classifier.id if classifier else None,
            endpoint=row.endpoint,
            version_id=row.version_id,
            prediction_id=row.id,
        )
        self.write([task])
        return {
            "task_ids": [task.id],
            "prediction_id": row.id,
            "classifier": classifier.name if classifier else None,
        }

    def _logged(self, prediction_id: str) -> PredictionRow:
        deadline = time.monotonic() + (WAIT_SECONDS if _recent(prediction_id) else 0.0)
        while True:
            with self.database.reading() as session:
                row = session.get(PredictionRow, prediction_id)
                if row is not None:
                    session.expunge(row)
                    return row
            if time.monotonic() >= deadline:
                days = self.settings.prediction_retention_days
                kept = f"kept {days} days (TAGLOOP_PREDICTION_RETENTION_DAYS)" if days else "never deleted"
                raise NotFound(
                    f"no logged prediction {prediction_id!r}: unknown or expired (predictions are {kept})"
                )
            time.sleep(0.05)

    # ---- on texts ------------------------------------------------------------------------
    def on_texts(
        self, classifier: str, texts: Sequence[str], verdict: Verdict | None = None
    ) -> dict[str, Any]:
        """One moderator task per text, each with the prediction of what ``classifier`` serves."""
        verdict = verdict or Verdict()
        _check_verdict(verdict)
        self.check_texts(texts)
        endpoint, version_name, version_id, model = self._model(classifier)
        with self.database.reading() as session:
            classifier_id = ClassifierRepository(session).get(classifier).id
        choices = tuple(model.labels)
        unknown = [label for label in verdict.labels if label not in choices]
        if unknown:
            raise InvalidRequest(f"labels: {unknown[0]!r} is not a label of {classifier!r}")
        tasks = []
        for number, (text, prediction) in enumerate(
            zip(
                texts,
                self.predictions.classify(model, list(texts), self.predictions.answer_top(model)),
                strict=True,
            )
        ):
            if prediction.error is not None:
                where = f"sentences[{number}]" if len(texts) > 1 else "sentence"
                raise InvalidRequest(f"{where}: {prediction.error.message}")
            tasks.append(
                _task(
                    text,
                    prediction,
                    choices,
                    verdict,
                    source="text",
                    classifier_id=classifier_id,
                    endpoint=endpoint,
                    version_id=version_id,
                    prediction_id=None,
                )
            )
        self.write(tasks)
        return {"task_ids": [task.id for task in tasks], "classifier": classifier, "version": version_name}

    def check_texts(self, texts: Sequence[str], offset: int = 0) -> None:
        """Refuse a call's texts that cannot be feedback (their number from ``offset``)."""
        if not texts:
            raise InvalidRequest("sentences: send at least one text")
        most = self.settings.max_classify_documents
        if len(texts) > most:
            raise LimitExceeded(over_limit(f"{len(texts):,} sentences", most, "max_classify_documents"))
        limit = self.settings.max_classify_bytes
        for number, text in enumerate(texts, start=offset):
            if not isinstance(text, str) or not text.strip():
                raise InvalidRequest(f"sentences[{number}]: expected a non-empty text")
            if (size := utf8_size_over(text, limit)) is not None:
                raise LimitExceeded(
                    over_limit(f"sentences[{number}] is {size:,} bytes", limit, "max_classify_bytes")
                )

    def _model(self, classifier: str) -> tuple[str | None, str, int, Any]:
        """What ``classifier`` serves: its first endpoint in service, else its newest trained
        version (endpoint None)."""
        for summary in self.endpoints.list():
            if summary["classifier"] == classifier and summary["status"] == IN_SERVICE:
                serving = self.endpoints.serving(summary["name"])
                return serving.endpoint, serving.version, serving.version_id, serving.model
        version, model = self.predictions.model(classifier)
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            found = ModelVersionRepository(session).find(row.id, version)
            version_id = found.id if found is not None else 0
        return None, version, version_id, model


def _check_verdict(verdict: Verdict) -> None:
    if verdict.correct is True and verdict.labels:
        raise InvalidRequest("labels: give the right labels only with correct: false")
    if verdict.comment is not None and len(verdict.comment) > MAX_COMMENT:
        raise LimitExceeded(f"comment: {len(verdict.comment):,} characters; at most {MAX_COMMENT:,}")
    if len(set(verdict.labels)) != len(verdict.labels):
        raise InvalidRequest("labels: a label is listed twice")


def _recent(prediction_id: str) -> bool:
    """Whether ``prediction_id`` (a UUIDv7 of the log: Unix milliseconds first) is seconds old."""
    try:
        millis = int(prediction_id[:12], 16)
    except ValueError:
        return False
    return 0 <= time.time() - millis / 1000 < RECENT_SECONDS


def _task(
    text: str,
    prediction: Prediction,
    choices: tuple[str, ...],
    verdict: Verdict,
    *,
    source: str,
    classifier_id: int | None,
    endpoint: str | None,
    version_id: int | None,
    prediction_id: str | None,
) -> NewTask:
    scores = prediction.scores
    return NewTask(
        text=text,
        mode=Mode(prediction.mode),
        choices=choices,
        reason=Reason.FEEDBACK.value,
        classifier_id=classifier_id,
        endpoint=endpoint,
        version_id=version_id,
        prediction_id=prediction_id,
        prediction={"labels": list(prediction.labels), "scores": list(scores)},
        priority=priority(prediction),
        uncertainty=1.0 - scores[0] if scores else 1.0,
        queue=Queue.MODERATE,
        feedback={
            "correct": verdict.correct,
            "labels": list(verdict.labels),
            "comment": verdict.comment,
            "source": source,
        },
        id=new_task_id(),
    )


def parse_feedback_file(content: str, name: str = "feedback file") -> tuple[str | None, list[str]]:
    """The classifier (if the file names one) and the sentences of a feedback file: one JSON
    object ``{"classifier": ..., "sentences": [...]}`` (the seed workflow's feedback file), or
    JSON lines, each a string or an object with ``sentence`` (or ``text``) and optionally
    ``classifier``. Errors name the line."""
    stripped = content.strip()
    if not stripped:
        raise InvalidRequest(f"{name}: empty")
    try:
        whole = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and "sentences" in whole:
        sentences = whole["sentences"]
        if not isinstance(sentences, list) or not all(isinstance(item, str) for item in sentences):
            raise InvalidRequest(f"{name}: `sentences` must be a list of texts")
        classifier = whole.get("classifier")
        if classifier is not None and not isinstance(classifier, str):
            raise InvalidRequest(f"{name}: `classifier` must be a name")
        return classifier, sentences
    classifiers: set[str] = set()
    sentences = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"{name} line {number}: not JSON ({exc})") from exc
        if isinstance(item, dict):
            if isinstance(item.get("classifier"), str):
                classifiers.add(item["classifier"])
            item = item.get("sentence", item.get("text"))
        if not isinstance(item, str):
            raise InvalidRequest(f"{name} line {number}: expected a text, or an object with `sentence`")
        sentences.append(item)
    if len(classifiers) > 1:
        raise InvalidRequest(f"{name}: lines name several classifiers ({', '.join(sorted(classifiers))})")
    return (classifiers.pop() if classifiers else None), sentences
