"""Filling the review queue with active-learning picks from the unlabelled pool.

:meth:`ReviewFill.fill` scores the documents waiting in a classifier's pool with the model that
matters (the loop's champion; else the newest version an endpoint serves; else the newest
TRAINED version), lets a query strategy (``domain.strategies``, fed by
``services.picking.candidates``) choose ``count`` of them, and stores one review task per pick
(reason ``active_learning``, priority by rank: ``domain.pool.rank_priority``) while marking the
picked pool documents, in one transaction. A task that ends without labels (stopped, expired)
puts its document back in the pool (``storage/review.py``). :meth:`ReviewFill.refill` is the
loop ticker's part: for every loop with ``refill_below`` set, a fill of ``refill_count`` with
``refill_strategy`` when fewer tasks of its classifier wait in the review queue.

Scoring runs outside any transaction; the write then takes the classifier's pool lock and
keeps only picks still waiting (a fill running at the same time in another process may have
taken some), and a refill checks again under the lock that the queue is still low: several
processes may run :meth:`ReviewFill.refill` at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagloop.domain.loop import LoopSettings
from tagloop.domain.pool import rank_priority
from tagloop.domain.predictions import ranked
from tagloop.domain.records import Mode, Split, VersionStatus
from tagloop.domain.review import NewTask, Queue
from tagloop.domain.routing import MAX_REQUIRED, Reason
from tagloop.domain.strategies import strategy as make_strategy
from tagloop.errors import InvalidRequest, ResourceUnavailable, TagloopError
from tagloop.services.model_cache import ModelCache
from tagloop.services.picking import candidates
from tagloop.services.routing import new_task_id
from tagloop.storage.database import Database
from tagloop.storage.pool import PoolRepository
from tagloop.storage.repositories import ClassifierRepository, DocumentRepository, ModelVersionRepository
from tagloop.storage.review import ReviewRepository, task_row, transient, write_transaction
from tagloop.storage.tables import ClassifierRow, DocumentRow, EndpointRow, LoopRow, ModelVersionRow, utcnow

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

MAX_COUNT = 10_000
"""Picks of one fill (``LoopSettings.refill_count``'s bound)."""
ATTEMPTS = 5
SHOWN_CHOICES = 3
"""Classes shown with a multi-class pick's prediction, as classify answers show them."""


class ReviewFill:
    """See the module's text. ``score_limit`` (TAGLOOP_POOL_SCORE_LIMIT) bounds the pool
    documents one fill scores (a random sample when the pool is bigger), and the labelled
    documents a batch-aware strategy compares them with; ``seed`` fixes the random draws."""

    def __init__(
        self,
        database: Database,
        models: ModelCache,
        score_limit: int = 20_000,
        clock: Clock = utcnow,
        seed: int | None = None,
    ) -> None:
        self.database = database
        self.models = models
        self.score_limit = score_limit
        self.clock = clock
        self.seed = seed

    def fill(
        self,
        classifier: str,
        strategy: str = "margin",
        count: int = 50,
        required: int = 1,
        lifetime_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Put ``count`` picks of ``strategy`` from ``classifier``'s pool in the review queue.
        InvalidRequest for an unknown strategy, a bad count or an empty pool;
        ResourceUnavailable when the classifier has no trained version."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise InvalidRequest(f"count: expected a whole number from 1 to {MAX_COUNT:,}, got {count!r}")
        if isinstance(required, bool) or not isinstance(required, int) or not 1 <= required <= MAX_REQUIRED:
            raise InvalidRequest(f"required: answers per task must be 1 to {MAX_REQUIRED}, not {required!r}")
        result = self._fill(classifier, strategy, count, required, lifetime_seconds, below=None)
        if result["picked"] == 0 and result["pool_waiting"] == 0:
            raise InvalidRequest(
                f"the pool of classifier {classifier!r} has no documents waiting: add some with "
                "`tagloop pool add` (or POST /v1/classifiers/{name}/pool)"
            )
        return result

    def refill(self) -> dict[str, Any]:
        """One tick of automatic refills (see the module's text); figures per classifier.
        One classifier's trouble (no trained version yet, a bad strategy name) is logged and
        the others go on."""
        with self.database.reading() as session:
            loops = session.execute(
                select(ClassifierRow.name, ClassifierRow.id, LoopRow.settings).join(
                    LoopRow, LoopRow.classifier_id == ClassifierRow.id
                )
            ).all()
        filled: dict[str, Any] = {}
        for name, classifier_id, stored in loops:
            try:
                settings = LoopSettings.from_dict(stored or {})
                if settings.refill_below is None:
                    continue
                with self.database.reading() as session:
                    waiting = ReviewRepository(session).count_queue(Queue.REVIEW, classifier_id)
                    pooled = PoolRepository(session).counts(classifier_id)["waiting"]
                if waiting >= settings.refill_below or pooled == 0:
                    continue
                filled[name] = self._fill(
                    name,
                    settings.refill_strategy,
                    settings.refill_count,
                    1,
                    None,
                    below=settings.refill_below,
                )
            except TagloopError as exc:
                log.info("refill of %s skipped: %s", name, exc)
            except Exception:
                log.exception("refill of %s failed", name)
        return {"classifiers": filled}

    def tick(self) -> None:
        """The loop ticker's part: :meth:`refill`, its figures logged."""
        for name, filled in self.refill()["classifiers"].items():
            if filled["picked"]:
                log.info("refill: %d active-learning task(s) for %s", filled["picked"], name)

    # --- the work --------------------------------------------------------------------------

    def _fill(
        self,
        classifier: str,
        strategy_name: str,
        count: int,
        required: int,
        lifetime_seconds: int | None,
        below: int | None,
    ) -> dict[str, Any]:
        chooser = make_strategy(strategy_name)
        rng = np.random.default_rng(self.seed)
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            classifier_id, mode = row.id, Mode(row.mode)
            version, source = _model_version(session, row)
            pool = PoolRepository(session)
            waiting = pool.waiting_ids(classifier_id)
            scored = waiting
            if len(waiting) > self.score_limit:
                scored = sorted(rng.choice(np.asarray(waiting), self.score_limit, replace=False).tolist())
            found = pool.texts(scored)
            labelled: Sequence[str] | None = None
            if chooser.needs_features:
                labelled = _labelled_texts(session, version, classifier_id, self.score_limit, rng)
        summary: dict[str, Any] = {
            "classifier": classifier,
            "strategy": chooser.name,
            "version": version.name,
            "model": source,
            "pool_waiting": len(waiting),
            "pool_scored": len(scored),
            "picked": 0,
            "tasks": [],
        }
        if not scored:
            return summary
        model = self.models.get(version)
        texts = [found[doc_id][0] for doc_id in scored]
        pool_candidates = candidates(model, texts, labelled, need_features=chooser.needs_features)
        order = [int(i) for i in chooser.select(pool_candidates, count, rng)][:count]
        scores = np.asarray(pool_candidates.scores)

        def write(session: Session) -> list[dict[str, Any]]:
            pool = PoolRepository(session)
            pool.lock(classifier_id)
            review = ReviewRepository(session)
            if below is not None and review.count_queue(Queue.REVIEW, classifier_id) >= below:
                return []  # another process refilled meanwhile
            still = pool.still_waiting(classifier_id, [scored[i] for i in order])
            kept = [i for i in order if scored[i] in still]
            if not kept:
                return []
            rows = scores[kept]
            predictions = ranked(
                list(model.labels),
                mode,
                rows,
                model.decide(rows) if mode is Mode.MULTI_LABEL else [],
                SHOWN_CHOICES if mode is Mode.MULTI_CLASS else None,
            )
            now = self.clock()
            tasks: list[dict[str, Any]] = []
            new_rows: list[dict[str, Any]] = []
            picks: list[tuple[int, str]] = []
            for rank, (i, prediction) in enumerate(zip(kept, predictions, strict=True)):
                doc_id = scored[i]
                task_id = new_task_id()
                priority = rank_priority(rank, len(kept))
                new_rows.append(
                    task_row(
                        NewTask(
                            text=texts[i],
                            mode=mode,
                            choices=tuple(model.labels),
                            reason=Reason.ACTIVE_LEARNING.value,
                            classifier_id=classifier_id,
                            version_id=version.id,
                            prediction={"labels": list(prediction.labels), "scores": list(prediction.scores)},
                            priority=priority,
                            uncertainty=1.0 - float(rows[rank].max(initial=0.0)),
                            required=required,
                            lifetime_seconds=lifetime_seconds,
                            id=task_id,
                        ),
                        now,
                    )
                )
                picks.append((doc_id, task_id))
                tasks.append(
                    {"task_id": task_id, "document_id": doc_id, "rank": rank + 1, "priority": priority}
                )
            review.add_many(new_rows)
            pool.mark_picked(picks)
            return tasks

        tasks = _retrying(self.database, write)
        summary["picked"] = len(tasks)
        summary["tasks"] = tasks
        return summary


def _retrying(database: Database, work: Callable[[Session], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run ``work`` in a write transaction, again when it failed transiently (a deadlock)."""
    for attempt in range(ATTEMPTS):
        try:
            with write_transaction(database) as session:
                return work(session)
        except Exception as exc:
            if not transient(exc) or attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _model_version(session: Session, classifier: ClassifierRow) -> tuple[ModelVersionRow, str]:
    """The version that scores the pool, and where it was found: ``champion`` (the loop's active
    version), ``endpoint`` (the newest version an endpoint of the classifier serves) or
    ``newest`` (the newest TRAINED version)."""
    trained = VersionStatus.TRAINED.value
    champion = session.scalar(
        select(ModelVersionRow)
        .join(LoopRow, LoopRow.active_version_id == ModelVersionRow.id)
        .where(LoopRow.classifier_id == classifier.id, ModelVersionRow.status == trained)
    )
    if champion is not None:
        return champion, "champion"
    served = session.scalar(
        select(ModelVersionRow)
        .join(EndpointRow, EndpointRow.version_id == ModelVersionRow.id)
        .where(EndpointRow.classifier_id == classifier.id, ModelVersionRow.status == trained)
        .order_by(ModelVersionRow.number.desc())
        .limit(1)
    )
    if served is not None:
        return served, "endpoint"
    newest = ModelVersionRepository(session).latest(classifier.id, trained)
    if newest is None:
        raise ResourceUnavailable(
            f"classifier {classifier.name!r} has no trained model version yet to score its pool with"
        )
    return newest, "newest"


def _labelled_texts(
    session: Session, version: ModelVersionRow, classifier_id: int, limit: int, rng: np.random.Generator
) -> Sequence[str]:
    """Texts of labelled documents (the version's training split and the verified documents),
    at most ``limit`` (a random sample beyond): what batch-aware strategies keep away from."""
    query = select(DocumentRow.text).where(
        (DocumentRow.dataset_id == version.train_dataset_id) & (DocumentRow.split == Split.TRAIN.value)
        if version.train_dataset_id is not None
        else DocumentRow.id.is_(None)
    )
    texts = list(session.scalars(query))
    texts += list(session.scalars(select(DocumentRow.text).where(DocumentRepository.verified(classifier_id))))
    if len(texts) > limit:
        chosen = rng.choice(len(texts), limit, replace=False)
        texts = [texts[i] for i in sorted(chosen.tolist())]
    return texts
