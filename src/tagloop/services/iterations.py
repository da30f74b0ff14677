"""Iterations of a classifier's loop (Comprehend's flywheel iterations), run as ``iterate`` jobs.

An iteration trains a challenger on all the loop's training data with the classifier's recipe
(``TrainingService.prepare`` composes it: the champion's imported documents, the loop's TRAIN
datasets, the verified ``train`` documents), evaluates the champion on the very documents the
challenger was evaluated on (the frozen test set), decides by the loop's rule
(``domain/promotion.py``) and, when the rule says so, promotes the challenger in the SAME
transaction that records the decision: an iteration is never half-promoted.

Statuses are Comprehend's: TRAINING → EVALUATING → COMPLETED, or FAILED, or STOP_REQUESTED →
STOPPED. :class:`IterateJob` is their one writer once :meth:`IterationService.start` recorded
the iteration; a job whose worker died is claimed again and resumes (a challenger already
TRAINED is not trained again).
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tagloop.domain.loop import LoopSettings
from tagloop.domain.metrics import Evaluation, evaluate, label_universe
from tagloop.domain.progress import Progress
from tagloop.domain.promotion import Decision, decide
from tagloop.domain.records import Mode, Split, VersionStatus
from tagloop.errors import InvalidRequest, NotFound, ResourceInUse, ResourceUnavailable, Stopped, TagloopError
from tagloop.jobs.port import JobContext, JobKindBase, JobQueue
from tagloop.recipes import tfidf_linear
from tagloop.recipes.base import predict
from tagloop.services.loops import ensure_loop, loop_settings, promote_in
from tagloop.services.model_cache import ModelCache
from tagloop.services.training import TrainingService, TrainJob, TrainRequest
from tagloop.storage.database import Database
from tagloop.storage.events import EventRepository
from tagloop.storage.loops import ENDED, IN_PROGRESS, IterationRepository, LoopRepository
from tagloop.storage.repositories import ClassifierRepository, DocumentRepository, ModelVersionRepository
from tagloop.storage.tables import ClassifierRow, IterationRow, JobRow, LoopRow, ModelVersionRow, utcnow

ITERATE_JOB = "iterate"
TRAINING, EVALUATING, COMPLETED = "TRAINING", "EVALUATING", "COMPLETED"
FAILED, STOP_REQUESTED, STOPPED = "FAILED", "STOP_REQUESTED", "STOPPED"
TRIGGERS = ("manual", "api", "verified", "schedule")
MAX_LIST = 1_000
log = logging.getLogger(__name__)


def iteration_summary(session: Session, classifier: ClassifierRow, row: IterationRow) -> dict[str, Any]:
    """An iteration as the CLI, /v1 and Comprehend's DescribeFlywheelIteration read it."""

    def name(version_id: int | None) -> str | None:
        found = session.get(ModelVersionRow, version_id) if version_id is not None else None
        return found.name if found is not None else None

    return {
        "classifier": classifier.name,
        "iteration": row.name,
        "id": row.id,
        "number": row.number,
        "status": row.status,
        "trigger": row.trigger,
        "champion": name(row.champion_version_id),
        "challenger": name(row.challenger_version_id),
        "metrics": {"champion": row.champion_metrics, "challenger": row.challenger_metrics},
        "per_label": row.per_label or {},
        "documents": dict(row.documents or {}),
        "rule": dict(row.rule or {}),
        "decision": row.decision,
        "reason": row.reason,
        "message": row.message,
        "job_id": row.job_id,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }


class IterationService:
    def __init__(
        self, database: Database, training: TrainingService, models: ModelCache, queue: JobQueue
    ) -> None:
        self.database = database
        self.training = training
        self.models = models
        self.queue = queue

    # ---- starting ---------------------------------------------------------------------
    def start(self, classifier: str, trigger: str = "manual") -> dict[str, Any]:
        """Record a new iteration (status TRAINING) and enqueue its ``iterate`` job, in one
        transaction; ResourceInUse if one of the classifier's iterations has not ended."""
        if trigger not in TRIGGERS:
            raise InvalidRequest(f"trigger: {trigger!r} is not one of {', '.join(TRIGGERS)}")
        try:
            with self.database.transaction() as session:
                classifier_row = ClassifierRepository(session).get(classifier)
                ensure_loop(session, classifier_row)
                loop = LoopRepository(session).find(classifier_row.id, lock=True)
                assert loop is not None
                row = self._start_in(session, classifier_row, loop, trigger)
                return iteration_summary(session, classifier_row, row)
        except IntegrityError as exc:  # another process started one at the same moment
            raise ResourceInUse(f"classifier {classifier!r} has an iteration in progress") from exc

    def _start_in(
        self, session: Session, classifier: ClassifierRow, loop: LoopRow, trigger: str
    ) -> IterationRow:
        iterations = IterationRepository(session)
        running = iterations.running(loop.id)
        if running is not None:
            raise ResourceInUse(
                f"classifier {classifier.name!r} has an iteration in progress: {running.name} "
                f"({running.status}); wait for it or stop it first"
            )
        settings = loop_settings(loop)
        row = iterations.add(
            loop,
            trigger,
            status=TRAINING,
            champion_version_id=loop.active_version_id,
        )
        row.rule = {
            "metric": settings.metric,
            "min_gain": settings.min_gain,
            "max_label_drop": settings.max_label_drop,
            "promote": settings.promote,
        }
        row.job_id = self.queue.enqueue(
            session, ITERATE_JOB, {"iteration_id": row.id}, classifier_id=classifier.id
        )
        loop.verified_mark = LoopRepository(session).verified_count(classifier.id)
        session.flush()
        return row

    def run(
        self, classifier: str, progress: Progress | None = None, trigger: str = "manual"
    ) -> dict[str, Any]:
        """Start an iteration and run it in this thread (the CLI's ``tagloop iterate``)."""
        started = self.start(classifier, trigger)
        with contextlib.suppress(TagloopError):  # recorded on the iteration: FAILED or STOPPED
            self.queue.run_now(started["job_id"], progress)
        return self.get(classifier, started["iteration"])

    # ---- reading ----------------------------------------------------------------------
    def get(self, classifier: str, iteration: str) -> dict[str, Any]:
        with self.database.reading() as session:
            classifier_row, row = self._find(session, classifier, iteration)
            return iteration_summary(session, classifier_row, row)

    def list(
        self,
        classifier: str,
        limit: int = 100,
        after: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The classifier's iterations, newest first, created strictly within the bounds given;
        ``after`` (an iteration's name or number) lists those before it."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidRequest(f"limit: expected 1 to {MAX_LIST:,}")
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            loop = LoopRepository(session).find(classifier_row.id)
            if loop is None:
                return []
            before = None
            if after is not None:
                found = IterationRepository(session).find(loop.id, after)
                if found is None:
                    raise NotFound(f"classifier {classifier!r} has no iteration {after!r}")
                before = found.number
            rows = IterationRepository(session).list(loop.id, limit, before, created_after, created_before)
            return [iteration_summary(session, classifier_row, row) for row in rows]

    def _find(self, session: Session, classifier: str, iteration: str) -> tuple[ClassifierRow, IterationRow]:
        classifier_row = ClassifierRepository(session).get(classifier)
        loop = LoopRepository(session).find(classifier_row.id)
        row = IterationRepository(session).find(loop.id, iteration) if loop is not None else None
        if row is None:
            raise NotFound(f"classifier {classifier!r} has no iteration {iteration!r}")
        return classifier_row, row

    # ---- stopping ---------------------------------------------------------------------
    def stop(self, classifier: str, iteration: str) -> dict[str, Any]:
        """Ask an iteration to stop: at once if its job has not started, else within seconds
        (it ends STOPPED, its challenger never promoted). An ended iteration is left as is."""
        with self.database.reading() as session:
            _, row = self._find(session, classifier, iteration)
            job_id, status = row.job_id, row.status
        if status in IN_PROGRESS and job_id is not None:
            self.queue.request_stop(job_id)
        return self.get(classifier, iteration)

    def wait(self, classifier: str, iteration: str, timeout: float | None = None) -> dict[str, Any]:
        summary = self.get(classifier, iteration)
        if summary["job_id"] is not None and summary["status"] not in ENDED:
            self.queue.wait(summary["job_id"], timeout)
        return self.get(classifier, iteration)

    # ---- triggers ---------------------------------------------------------------------
    def tick(self) -> None:
        """Start the iterations whose trigger is due (a loop ticker part): ``every_seconds``
        (the process that moves ``next_run_at`` on starts it) and ``after_verified`` (as many
        new verified documents since the last iteration started). Safe in several processes:
        a loop runs one iteration at a time."""
        with self.database.reading() as session:
            loops = [
                (row.id, row.classifier_id, dict(row.settings or {}), row.verified_mark, row.next_run_at)
                for row in LoopRepository(session).list()
            ]
        now = utcnow()
        for loop_id, classifier_id, stored, mark, next_run_at in loops:
            try:
                settings = LoopSettings.from_dict(stored)
            except TagloopError as exc:
                log.error("loop %s: its stored settings are not valid (%s); no trigger runs", loop_id, exc)
                continue
            trigger = "schedule"
            try:
                if settings.every_seconds and next_run_at is not None and next_run_at <= now:
                    self._tick_start(
                        loop_id, classifier_id, "schedule", due=next_run_at, every=settings.every_seconds
                    )
                elif settings.after_verified:
                    trigger = "verified"
                    with self.database.reading() as session:
                        count = LoopRepository(session).verified_count(classifier_id)
                    if count - mark >= settings.after_verified:
                        self._tick_start(loop_id, classifier_id, "verified")
            except ResourceInUse:
                pass  # one is running; the trigger fires again once it ended
            except TagloopError as exc:
                log.warning("loop %s: the %s trigger could not start an iteration: %s", loop_id, trigger, exc)

    def _tick_start(
        self, loop_id: int, classifier_id: int, trigger: str, due: Any = None, every: int | None = None
    ) -> None:
        with self.database.transaction() as session:
            loops = LoopRepository(session)
            if (
                due is not None
                and every is not None
                and not loops.advance_schedule(loop_id, due, utcnow() + timedelta(seconds=every))
            ):
                return  # another process took this turn
            loop = loops.find(classifier_id, lock=True)
            if loop is None or IterationRepository(session).running(loop_id) is not None:
                return
            classifier = session.get_one(ClassifierRow, classifier_id)
            row = self._start_in(session, classifier, loop, trigger)
            log.info("loop of %s: iteration %s started (%s)", classifier.name, row.name, trigger)


class IterateJob(JobKindBase):
    """The ``iterate`` job kind: one iteration, from TRAINING to its decision."""

    kind = ITERATE_JOB

    def __init__(self, iterations: IterationService) -> None:
        self.iterations = iterations
        self.database = iterations.database
        self.training = iterations.training

    # ---- the job-kind hooks ------------------------------------------------------------
    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        iteration_id = str(payload["iteration_id"])
        try:
            return self.iterate(iteration_id, context.progress, context.should_stop)
        except Stopped:
            self._end(iteration_id, STOPPED, "stopped on request")
            raise
        except TagloopError as exc:
            self._end(iteration_id, FAILED, exc.message)
            raise

    def stop_requested(self, session: Session, job: JobRow) -> None:
        IterationRepository(session).transition(
            str(job.payload["iteration_id"]), STOP_REQUESTED, when=(TRAINING, EVALUATING)
        )

    def retried(self, session: Session, job: JobRow) -> None:
        iterations = IterationRepository(session)
        iteration_id = str(job.payload["iteration_id"])
        if iterations.transition(iteration_id, TRAINING, when=(FAILED, STOPPED), message=None, ended_at=None):
            row = iterations.get(iteration_id)
            if row.challenger_version_id is not None:
                ModelVersionRepository(session).transition(
                    row.challenger_version_id,
                    VersionStatus.SUBMITTED.value,
                    when=(VersionStatus.IN_ERROR.value, VersionStatus.STOPPED.value),
                    message=None,
                    ended_at=None,
                )

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        self._end(str(payload["iteration_id"]), STOPPED if status == "STOPPED" else FAILED, message)

    # ---- the iteration ----------------------------------------------------------------
    def iterate(
        self,
        iteration_id: str,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        report = progress or (lambda fraction, message: None)
        stop = should_stop or (lambda: False)
        challenger_id = self._challenger(iteration_id, report)
        with self.database.reading() as session:
            challenger = ModelVersionRepository(session).get(challenger_id)
            trained = challenger.status == VersionStatus.TRAINED.value
        if not trained:  # trained inline by the train job's code (its statuses included)
            TrainJob(self.training).train(
                challenger_id,
                lambda fraction, message: report(0.02 + 0.83 * fraction, f"challenger: {message}"),
                stop,
                resume=True,
            )
        with self.database.transaction() as session:
            if not IterationRepository(session).transition(
                iteration_id, EVALUATING, when=(TRAINING, EVALUATING)
            ):
                raise Stopped("stopped on request")
        report(0.85, "evaluating the champion on the same test set")
        champion_eval, challenger_eval, settings, row = self._evaluate(iteration_id, stop)
        decision = decide(settings, champion_eval, challenger_eval)
        if stop():
            raise Stopped("stopped on request")
        report(0.97, f"decision: {decision.decision}")
        return self._conclude(iteration_id, row, decision, champion_eval, challenger_eval)

    def _challenger(self, iteration_id: str, report: Progress) -> int:
        """The iteration's challenger version, recorded (SUBMITTED, its data composed) in the
        transaction that links it to the iteration; the one recorded before on a retry."""
        report(0.0, "composing the training data and the frozen test set")  # not inside a transaction
        with self.database.transaction() as session:
            iterations = IterationRepository(session)
            row = iterations.get(iteration_id)
            if row.status == STOP_REQUESTED:
                raise Stopped("stopped on request")
            if row.status not in (TRAINING, EVALUATING):
                raise ResourceInUse(f"iteration {row.name} is {row.status}")
            if row.started_at is None:
                row.started_at = utcnow()
            if row.challenger_version_id is not None:
                return row.challenger_version_id
            classifier = session.get_one(ClassifierRow, row.classifier_id)
            params = tfidf_linear.TfidfLinearParams()
            if row.champion_version_id is not None:  # the champion's recipe settings carry over
                recorded = session.get_one(ModelVersionRow, row.champion_version_id).parameters or {}
                names = {item.name for item in fields(tfidf_linear.TfidfLinearParams)}
                params = tfidf_linear.TfidfLinearParams(**{k: v for k, v in recorded.items() if k in names})
            version = self.training.prepare(
                session,
                TrainRequest(
                    classifier=classifier.name,
                    data=None,
                    mode=Mode(classifier.mode),
                    delimiter=classifier.label_delimiter,
                    with_verified=True,
                    base_version_id=row.champion_version_id,
                    params=params,
                ),
            )
            row.challenger_version_id = version.id
            documents = DocumentRepository(session)
            assert version.train_dataset_id is not None
            counts = {
                "train": int(version.documents.get("train", 0)),
                "test": int(version.documents.get("test", 0)),
            }
            for split in (Split.TRAIN.value, Split.TEST.value):
                for origin, count in sorted(documents.origins(version.train_dataset_id, split).items()):
                    counts[f"{split}_{origin}"] = count
            row.documents = counts
            return version.id

    def _evaluate(
        self, iteration_id: str, stop: Callable[[], bool]
    ) -> tuple[Evaluation | None, Evaluation, LoopSettings, IterationRow]:
        """The challenger's evaluation (made by its training, on its test split) and the
        champion's on exactly those documents."""
        with self.database.reading() as session:
            row = IterationRepository(session).get(iteration_id)
            versions = ModelVersionRepository(session)
            assert row.challenger_version_id is not None
            challenger = versions.get(row.challenger_version_id)
            if challenger.metrics is None or challenger.test_dataset_id is None:
                raise ResourceUnavailable(
                    "the frozen test set is empty: add a TEST dataset or verified documents "
                    "(a share of them is held out), or train a version with a test set"
                )
            challenger_eval = Evaluation(
                dict(challenger.metrics),
                dict(challenger.per_label or {}),
                dict(challenger.confusion_matrix or {}),
                int((challenger.documents or {}).get("test", 0)),
            )
            settings = LoopSettings().updated(dict(row.rule or {}))
            classifier = session.get_one(ClassifierRow, row.classifier_id)
            champion = versions.get(row.champion_version_id) if row.champion_version_id is not None else None
            if champion is None or champion.status != VersionStatus.TRAINED.value:
                return None, challenger_eval, settings, row
            documents = DocumentRepository(session)
            gold = [labels for _, labels in documents.labels(challenger.test_dataset_id, Split.TEST.value)]
            texts = list(documents.texts(challenger.test_dataset_id, Split.TEST.value))
        model = self.iterations.models.get(champion)
        labels = list(champion.labels)
        predicted: list[list[str]] = []
        for _, picks in predict(model, texts):
            predicted.extend([labels[i] for i in doc] for doc in picks)
            if stop():
                raise Stopped("stopped on request")
        champion_eval = evaluate(Mode(classifier.mode), label_universe(labels, gold), gold, predicted)
        return champion_eval, challenger_eval, settings, row

    def _conclude(
        self,
        iteration_id: str,
        row: IterationRow,
        decision: Decision,
        champion_eval: Evaluation | None,
        challenger_eval: Evaluation,
    ) -> dict[str, Any]:
        """Record the decision and, if it promotes, promote: one transaction."""
        promote, reason = decision.promote, decision.reason
        if promote:
            with self.database.reading() as session:
                assert row.challenger_version_id is not None
                challenger = ModelVersionRepository(session).get(row.challenger_version_id)
            self.iterations.models.get(
                challenger, verify=True
            )  # a model that does not load is never promoted
        with self.database.transaction() as session:
            classifier = session.get_one(ClassifierRow, row.classifier_id)
            loop = LoopRepository(session).find(classifier.id, lock=True)
            iterations = IterationRepository(session)
            current = iterations.get(iteration_id)
            session.refresh(current)
            if current.status == STOP_REQUESTED:
                raise Stopped("stopped on request")
            if current.status != EVALUATING:
                raise ResourceInUse(f"iteration {current.name} is {current.status}")
            if promote and (loop is None or loop.active_version_id != row.champion_version_id):
                promote = False
                reason += "; not promoted: the champion changed while the iteration ran"
            challenger = ModelVersionRepository(session).get(row.challenger_version_id or 0)
            promoted = None
            if promote:
                assert loop is not None
                promoted = promote_in(session, classifier, loop, challenger, f"iteration {current.name}")
            figures = {
                "champion_metrics": champion_eval.metrics if champion_eval is not None else None,
                "challenger_metrics": challenger_eval.metrics,
                "per_label": decision.per_label,
                "decision": "promoted" if promote else "kept",
                "reason": reason,
            }
            iterations.transition(
                iteration_id, COMPLETED, when=(EVALUATING,), ended_at=utcnow(), message=None, **figures
            )
            session.refresh(current)
            summary = iteration_summary(session, classifier, current)
            EventRepository(session).add(
                "iteration.completed",
                {
                    "classifier": classifier.name,
                    "iteration": current.name,
                    "champion": summary["champion"],
                    "challenger": summary["challenger"],
                    "decision": summary["decision"],
                    "reason": reason,
                    "metric": decision_metric(current),
                    "metrics": summary["metrics"],
                    "endpoints": promoted["endpoints"] if promoted else [],
                },
                classifier_id=classifier.id,
            )
        return {key: summary[key] for key in ("classifier", "iteration", "status", "decision", "reason")}

    def _end(self, iteration_id: str, status: str, message: str) -> None:
        """End an iteration that will not complete (STOPPED or FAILED), once."""
        with self.database.transaction() as session:
            iterations = IterationRepository(session)
            ended = iterations.transition(
                iteration_id, status, when=IN_PROGRESS, message=message, ended_at=utcnow()
            )
            if ended and status == FAILED:
                row = iterations.get(iteration_id)
                classifier = session.get_one(ClassifierRow, row.classifier_id)
                EventRepository(session).add(
                    "iteration.failed",
                    {"classifier": classifier.name, "iteration": row.name, "message": message},
                    classifier_id=classifier.id,
                )


def decision_metric(row: IterationRow) -> str:
    return str((row.rule or {}).get("metric", LoopSettings().metric))
