"""Training a model version: import, split, fit, evaluate, store — each step atomic.

``submit`` imports the data, records the version as SUBMITTED and enqueues its ``train``
job in one transaction (a bad file leaves nothing behind). :class:`TrainJob` runs that job
and is the one writer of the version's status from then on (TRAINING, then TRAINED, or
IN_ERROR / STOPPED; stops and retries of its job included); ``TrainingService.fit`` does the
work. The model file is written under a temporary name and renamed before the version row
points at it, so a crash at any moment leaves either no model or a whole one, and never
changes another version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version as package_version
from typing import Any

from sqlalchemy.orm import Session

from tagloop import __version__
from tagloop.domain.formats import FormatSpec
from tagloop.domain.limits import Limits
from tagloop.domain.metrics import evaluate, label_universe
from tagloop.domain.names import check_name
from tagloop.domain.records import DEFAULT_LABEL_DELIMITER, JobStatus, Mode, Origin, Split, VersionStatus
from tagloop.domain.splitting import stratification_keys, stratified_holdout
from tagloop.domain.test_predictions import TEST_PREDICTIONS, TestPredictions, top_scores
from tagloop.domain.validation import label_list
from tagloop.errors import (
    AlreadyExists,
    DatasetInvalid,
    InvalidRequest,
    NotFound,
    ResourceInUse,
    ResourceUnavailable,
    RowIssue,
    Stopped,
    TagloopError,
)
from tagloop.jobs.port import JobContext, JobKindBase, JobQueue
from tagloop.recipes import tfidf_linear
from tagloop.recipes.base import Progress, predict
from tagloop.recipes.registry import RECIPES
from tagloop.services.catalog import get_or_create_classifier, version_summary
from tagloop.services.datasets import ReadOptions, import_dataset
from tagloop.services.notify_events import record_training
from tagloop.services.profiles import ProfileReader, ProfileService
from tagloop.settings import Settings
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.database import Database
from tagloop.storage.loops import LoopRepository
from tagloop.storage.pool import PoolRepository
from tagloop.storage.repositories import (
    ClassifierRepository,
    DatasetRepository,
    DocumentRepository,
    EndpointRepository,
    JobRepository,
    ModelVersionRepository,
)
from tagloop.storage.tables import ClassifierRow, DatasetRow, DocumentRow, JobRow, ModelVersionRow, utcnow


@dataclass(frozen=True)
class TrainRequest:
    classifier: str
    data: str | None
    """The training file; None with ``with_verified``: the latest version's training data."""
    test: str | None = None
    mode: Mode = Mode.MULTI_CLASS
    delimiter: str = DEFAULT_LABEL_DELIMITER
    version_name: str | None = None
    format: str | None = None
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    params: tfidf_linear.TfidfLinearParams = field(default_factory=tfidf_linear.TfidfLinearParams)
    # hears every rejected row of the data or test file (its source, the row), e.g. to write them
    # all to a file: the error itself lists at most MAX_ISSUES_KEPT
    on_issue: Callable[[str, RowIssue], None] | None = None
    with_verified: bool = False
    """Train on the classifier's verified documents too (consolidated from review tasks and
    feedback): those of split ``train`` in training, the held-out ones (split ``test``, the
    loop's frozen test set) in the test set; the version counts them by origin."""
    base_version_id: int | None = None
    """Without ``data``: retrain on this version's data (default: the loop's champion, else the
    newest TRAINED version), plus the loop's datasets and the verified documents."""
    profile: str | None = None
    """The classifier's import profile that reads ``data`` and ``test`` (services/profiles.py);
    a profile reading a database needs no ``data``."""


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "tagloop": __version__}
    for name in ("numpy", "scipy", "scikit-learn"):
        versions[name] = package_version(name)
    return versions


@dataclass(frozen=True)
class Submission:
    version_id: int
    job_id: str


MAX_SELF_TRAINING_POOL = 50_000
"""Pool documents a self-training fit learns from at most (a fit's time and memory grow with
them; on 20ng, 10,000 pool documents take a few seconds)."""


class TrainingService:
    def __init__(
        self,
        database: Database,
        artifacts: ArtifactStore,
        settings: Settings,
        queue: JobQueue,
        profiles: ProfileService | None = None,
    ) -> None:
        self.database = database
        self.artifacts = artifacts
        self.settings = settings
        self.queue = queue
        self.profiles = profiles  # reads TrainRequest.profile

    # ---- submit ----------------------------------------------------------------------
    def submit(self, request: TrainRequest) -> Submission:
        """Import the data, record a SUBMITTED version and enqueue its training job, atomically."""
        if (
            request.data is None
            and not request.with_verified
            and request.base_version_id is None
            and request.profile is None
        ):
            raise InvalidRequest(
                "give the training data (--data), or --with-verified to retrain on the latest "
                "version's data plus the verified documents"
            )
        with self.database.transaction() as session:
            version = self.prepare(session, request)
            job_id = self.queue.enqueue(
                session,
                TrainJob.kind,
                {"version_id": version.id},
                classifier_id=version.classifier_id,
                version_id=version.id,
            )
            return Submission(version.id, job_id)

    def prepare(self, session: Session, request: TrainRequest) -> ModelVersionRow:
        """Import or compose the data and record a SUBMITTED version in ``session``'s
        transaction (no job: :meth:`submit` enqueues one, an iteration trains it inline).

        With a file (``request.data``) the version trains on it (its test file, or a held-out
        share); with ``with_verified`` the verified ``train`` documents join its training data
        and the verified ``test`` documents its test set. Without a file it trains on
        :meth:`_compose`'s data: the base version's imported documents, the loop's datasets and
        the verified documents, each on its side of the frozen test set. Where tagloop split the
        data or added verified documents, no training document has the text of a test document
        (those are dropped from training); the user's own training and test files are kept as
        given, with a warning counting the texts they share."""
        started = time.perf_counter()
        limits = Limits.from_settings(self.settings)
        if request.version_name is not None:
            check_name("version", request.version_name)

        reader = self._profile_reader(session, request)
        if reader is not None:
            if reader.database_source is not None:
                request = replace(request, data=reader.database_source)
            elif request.data is None:
                raise InvalidRequest(
                    f"profile {request.profile!r} reads files: give the file to read with it (--data)"
                )

        def options(source: str) -> ReadOptions:
            on_issue = functools.partial(request.on_issue, source) if request.on_issue else None
            if reader is not None:
                delimiter = reader.spec.label_delimiter or request.delimiter
                return ReadOptions(
                    FormatSpec(),
                    request.mode,
                    delimiter,
                    limits,
                    on_issue=on_issue,
                    rows=reader.rows,
                    format_name=reader.format_name,
                    label_origin=reader.label_origin,
                )
            spec = FormatSpec.infer(source, request.format, request.text_columns, request.label_column)
            return ReadOptions(spec, request.mode, request.delimiter, limits, on_issue=on_issue)

        if request.data is None:  # retraining: the classifier's own mode and delimiter
            existing = ClassifierRepository(session).get(request.classifier)
            request = replace(request, mode=Mode.parse(existing.mode), delimiter=existing.label_delimiter)
        classifier = get_or_create_classifier(session, request.classifier, request.mode, request.delimiter)
        versions = ModelVersionRepository(session)
        if request.version_name and versions.find(classifier.id, request.version_name):
            raise AlreadyExists(
                f"classifier {request.classifier!r} already has a version {request.version_name!r}"
            )
        documents = DocumentRepository(session)
        origins: dict[str, int] = {}
        base_id: int | None = None
        if request.data is None:
            train_set, base_id, warnings, fingerprint_parts = self._compose(session, classifier, request)
            test_set = train_set
            if documents.count(train_set.id, Split.TEST.value) == 0:  # no test set of its own yet
                _, _, split_warnings = self._hold_out_test_set(documents, train_set.id)
                warnings += split_warnings
                fingerprint_parts.append(f"split:{self.settings.test_fraction}:{self.settings.split_seed}")
            origins = documents.origins(train_set.id, Split.TRAIN.value)
        else:
            train_set, train_report = import_dataset(
                session, classifier, request.data, options(request.data), Split.TRAIN
            )
            warnings = list(train_report.warnings)
            if request.test:
                test_set, test_report = import_dataset(
                    session, classifier, request.test, options(request.test), Split.TEST
                )
                warnings += [f"test set: {w}" for w in test_report.warnings]
                fingerprint_parts = [train_report.fingerprint, test_report.fingerprint]
            else:
                test_set = train_set
                _, _, split_warnings = self._hold_out_test_set(documents, train_set.id)
                warnings += split_warnings
                fingerprint_parts = [
                    train_report.fingerprint,
                    f"split:{self.settings.test_fraction}:{self.settings.split_seed}",
                ]
            if request.with_verified:
                digest, count = self._add_verified(documents, classifier.id, train_set.id, test_set.id)
                fingerprint_parts.append(f"verified:{digest}")
                origins = documents.origins(train_set.id, Split.TRAIN.value)
                if not count:
                    warnings.append(
                        f"classifier {request.classifier!r} has no verified documents yet "
                        "(review answers and feedback become verified documents)"
                    )
        if request.test and not request.with_verified:
            # the user's own two files, as given (figures comparable with any tool trained on
            # them), with the overlap named: the test figures may be optimistic
            overlap = documents.count_test_texts_in_training(train_set.id, test_set.id)
            if overlap:
                warnings.append(
                    f"{overlap:,} training document(s) have the text of a test document: kept as "
                    "given, the test figures may be optimistic"
                )
        else:  # tagloop made the split or added verified documents: it keeps them apart
            dropped = documents.drop_test_texts_from_training(train_set.id, test_set.id)
            if dropped:
                warnings.append(
                    f"{dropped:,} training document(s) with the text of a test document left out of training"
                )
        train_labels = documents.labels(train_set.id, Split.TRAIN.value)
        test_labels = documents.labels(test_set.id, Split.TEST.value)
        train_set.documents = documents.count(train_set.id, Split.TRAIN.value) + (
            documents.count(train_set.id, Split.TEST.value) if test_set is train_set else 0
        )
        label_counts: dict[str, int] = {}
        for _, labels in train_labels:
            for label in labels:
                label_counts[label] = label_counts.get(label, 0) + 1
        label_counts = dict(sorted(label_counts.items()))
        if request.mode is Mode.MULTI_CLASS and len(label_counts) < 2:
            raise DatasetInvalid(
                request.data or f"the data of classifier {request.classifier!r}",
                [],
                [f"multi-class training needs at least 2 labels, found {len(label_counts)}"],
            )
        unseen = sorted({label for _, labels in test_labels for label in labels} - set(label_counts))
        if unseen:
            warnings.append(f"test labels with no training documents: {label_list(unseen)}")
        composed = request.data is None
        return versions.add(
            classifier.id,
            request.version_name,
            status=VersionStatus.SUBMITTED.value,
            recipe=tfidf_linear.TfidfLinearModel.recipe,
            parameters={
                "recipe": tfidf_linear.TfidfLinearModel.recipe,
                **asdict(request.params),
                "test_fraction": None if request.test else self.settings.test_fraction,
                "split_seed": None if request.test else self.settings.split_seed,
                "sources": {"train": request.data, "test": request.test}
                | (
                    {"profile": {"name": reader.name, "spec": reader.shown_spec}}
                    if reader is not None
                    else {}
                ),
                "with_verified": request.with_verified or composed,
                "base_version_id": base_id,
            },
            train_dataset_id=train_set.id,
            test_dataset_id=test_set.id,
            data_fingerprint=hashlib.sha256("\n".join(fingerprint_parts).encode()).hexdigest(),
            labels=list(label_counts),
            label_counts=label_counts,
            documents={"train": len(train_labels), "test": len(test_labels)}
            | {
                origin: origins.get(origin, 0)
                for origin in documents.VERIFIED_ORIGINS
                if request.with_verified or composed
            },
            timings={"import_seconds": round(time.perf_counter() - started, 3)},
            library_versions=library_versions(),
            warnings=warnings,
        )

    def _profile_reader(self, session: Session, request: TrainRequest) -> ProfileReader | None:
        """The reader of the request's import profile (the classifier must exist), or None."""
        if request.profile is None:
            return None
        if request.format or request.text_columns or request.label_column:
            raise InvalidRequest(
                "give either an import profile or a format and columns: the profile says how to read the data"
            )
        if self.profiles is None:
            raise InvalidRequest("import profiles are not available here")
        classifier = ClassifierRepository(session).find(request.classifier)
        if classifier is None:
            raise NotFound(
                f"classifier {request.classifier!r} does not exist yet: create its profile first "
                f"(tagloop profiles add {request.classifier} {request.profile} ...)"
            )
        spec = self.profiles.spec_in(session, classifier.id, request.classifier, request.profile)
        return self.profiles.reader(request.profile, spec)

    def _compose(
        self, session: Session, classifier: ClassifierRow, request: TrainRequest
    ) -> tuple[DatasetRow, int | None, list[str], list[str]]:
        """A new dataset for a version trained without a file (an iteration's challenger,
        ``train --with-verified`` without data), as issue 14 defines it:

        - training split: the base version's imported training documents, the documents of
          the loop's TRAIN datasets and the verified ``train`` documents;
        - test split (the frozen test set): the base version's imported test documents, the
          loop's TEST datasets and the verified ``test`` documents.

        The base is ``request.base_version_id``, else the loop's champion, else the newest
        TRAINED version, else none (a loop with datasets or verified documents only).
        Returns the dataset, the base version's id, warnings and fingerprint parts."""
        versions = ModelVersionRepository(session)
        loop = LoopRepository(session).find(classifier.id)
        base: ModelVersionRow | None
        if request.base_version_id is not None:
            base = versions.get(request.base_version_id)
            if base.classifier_id != classifier.id:
                raise NotFound(f"classifier {classifier.name!r} has no version {request.base_version_id}")
        elif loop is not None and loop.active_version_id is not None:
            base = versions.get(loop.active_version_id)
        else:
            base = versions.latest(classifier.id, VersionStatus.TRAINED.value)
        loop_train = LoopRepository(session).datasets(loop.id, "TRAIN") if loop is not None else []
        loop_test = LoopRepository(session).datasets(loop.id, "TEST") if loop is not None else []
        documents = DocumentRepository(session)
        verified = documents.verified_count(classifier.id)
        if (base is None or base.train_dataset_id is None) and not loop_train and not verified:
            raise NotFound(
                f"classifier {classifier.name!r} has no trained version whose data could be "
                "reused, no loop dataset and no verified document: give the training data (--data)"
            )
        dataset = DatasetRepository(session).add(
            classifier.id, f"version {base.name}" if base is not None else "loop data", "copy"
        )
        parts: list[str] = []
        if base is not None and base.train_dataset_id is not None:
            documents.copy_into(
                dataset.id,
                Split.TRAIN.value,
                documents.of_split(base.train_dataset_id, Split.TRAIN.value, Origin.IMPORT.value),
            )
            if base.test_dataset_id is not None:
                documents.copy_into(
                    dataset.id,
                    Split.TEST.value,
                    documents.of_split(base.test_dataset_id, Split.TEST.value, Origin.IMPORT.value),
                )
            parts.append(f"version:{base.id}:{base.data_fingerprint}")
        for rows, split in ((loop_train, Split.TRAIN), (loop_test, Split.TEST)):
            for loop_dataset in rows:
                assert loop_dataset.dataset_id is not None
                documents.copy_into(
                    dataset.id, split.value, DocumentRow.dataset_id == loop_dataset.dataset_id
                )
                parts.append(f"loop-{split.value}:{loop_dataset.dataset_id}")
        digest, _ = self._add_verified(documents, classifier.id, dataset.id, dataset.id)
        parts.append(f"verified:{digest}")
        warnings = (
            []
            if verified
            else [
                f"classifier {classifier.name!r} has no verified documents yet "
                "(review answers and feedback become verified documents)"
            ]
        )
        return dataset, base.id if base is not None else None, warnings, parts

    @staticmethod
    def _add_verified(
        documents: DocumentRepository, classifier_id: int, train_id: int, test_id: int
    ) -> tuple[str, int]:
        """Copy the classifier's verified documents into the training split of ``train_id``
        (those of split ``train``) and the test split of ``test_id`` (those held out: split
        ``test``); returns a digest of what was copied (the version's data fingerprint) and
        how many were."""
        digest = hashlib.sha256()
        count = 0
        for text, labels, origin in documents.verified_rows(classifier_id):
            digest.update("\x1f".join((origin, "\x1e".join(labels), text)).encode() + b"\x00")
            count += 1
        verified = documents.verified(classifier_id)
        documents.copy_into(train_id, Split.TRAIN.value, verified & (DocumentRow.split == Split.TRAIN.value))
        documents.copy_into(test_id, Split.TEST.value, verified & (DocumentRow.split == Split.TEST.value))
        return digest.hexdigest(), count

    def _hold_out_test_set(
        self, documents: DocumentRepository, dataset_id: int
    ) -> tuple[list[tuple[int, tuple[str, ...]]], list[tuple[int, tuple[str, ...]]], list[str]]:
        """Mark a stratified share of a dataset's training split as its test split.

        Returns the (id, labels) of the training and of the test documents, and warnings.
        """
        rows = documents.labels(dataset_id, Split.TRAIN.value)
        mask, too_small = stratified_holdout(
            stratification_keys([labels for _, labels in rows]),
            self.settings.test_fraction,
            self.settings.split_seed,
        )
        test = [row for row, held in zip(rows, mask, strict=True) if held]
        train = [row for row, held in zip(rows, mask, strict=True) if not held]
        documents.set_split([id_ for id_, _ in test], Split.TEST)
        warnings = []
        if too_small:
            warnings.append(
                "too few documents to hold any out for testing, kept in training only: "
                + label_list(too_small)
            )
        return train, test, warnings

    # ---- run -------------------------------------------------------------------------
    def run(
        self,
        version_id: int,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Train a SUBMITTED version in this thread, its status moving as its job moves it
        (see :class:`TrainJob`); returns its summary (status TRAINED, or raises)."""
        return TrainJob(self).train(version_id, progress, should_stop, resume)

    @staticmethod
    def _pool_texts(session: Session, classifier_id: int, params: dict[str, Any]) -> list[str] | None:
        """The texts waiting in the classifier's pool, for a recipe that learns from unlabelled
        text (``self_training`` in its parameters); None otherwise (nothing is read)."""
        if not params.get("self_training"):
            return None
        pool = PoolRepository(session)
        waiting = pool.waiting_ids(classifier_id)
        if len(waiting) > MAX_SELF_TRAINING_POOL:  # evenly spread over the pool's history
            step = len(waiting) / MAX_SELF_TRAINING_POOL
            waiting = [waiting[int(i * step)] for i in range(MAX_SELF_TRAINING_POOL)]
        found = pool.texts(waiting)
        return [found[doc_id][0] for doc_id in sorted(found)]

    def fit(
        self,
        row: ModelVersionRow,
        mode: Mode,
        report: Progress,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Fit a version's model, evaluate it and store its files; returns the columns that
        record it (metrics, artifact, timings, warnings). Changes no status: its job does."""
        version_id, labels, params = row.id, list(row.labels), row.parameters
        train_id, test_id = row.train_dataset_id, row.test_dataset_id
        if train_id is None or test_id is None:  # a dataset's row deleted under its version
            raise ResourceUnavailable(f"the data of version {row.name} is gone; train a new version")
        timings = dict(row.timings)
        started = time.perf_counter()
        with self.database.reading() as session:
            documents = DocumentRepository(session)
            train_rows = documents.labels(train_id, Split.TRAIN)
            gold_rows = documents.labels(test_id, Split.TEST)
            model = RECIPES[row.recipe].fit(
                mode,
                labels,
                documents.texts(train_id, Split.TRAIN),
                [labels_ for _, labels_ in train_rows],
                params,
                n_jobs=self.settings.train_jobs,
                progress=lambda fraction, message: report(0.9 * fraction, message),
                should_stop=should_stop,
                unlabelled=self._pool_texts(session, row.classifier_id, params),
            )
            fitted = time.perf_counter()
            timings["fit_seconds"] = round(fitted - started, 3)
            report(0.9, "evaluating on the test set")
            predicted: list[list[str]] = []
            scored: list[tuple[Any, Any, list[list[int]]]] = []  # kept for the test predictions' file
            for scores, picks in predict(model, documents.texts(test_id, Split.TEST)):
                scored.append((*top_scores(scores), picks))
                predicted.extend([labels[i] for i in doc] for doc in picks)
                done = len(predicted)
                report(
                    0.9 + 0.07 * done / max(1, len(gold_rows)), f"evaluating: {done:,} of {len(gold_rows):,}"
                )
        gold = [labels_ for _, labels_ in gold_rows]
        evaluation = evaluate(mode, label_universe(labels, gold), gold, predicted) if gold else None
        timings["evaluate_seconds"] = round(time.perf_counter() - fitted, 3)
        if should_stop is not None and should_stop():
            raise Stopped("training stopped on request")
        report(0.97, "saving the model")
        saving = time.perf_counter()
        prefix = f"models/{row.classifier_id}/{version_id}"
        stored = self.artifacts.write_bytes(f"{prefix}/model.npz", model.to_bytes())
        if evaluation is not None:
            self.artifacts.write_bytes(
                f"{prefix}/confusion_matrix.json", json.dumps(evaluation.confusion_matrix).encode()
            )
            kept = TestPredictions.from_top(
                mode, label_universe(labels, gold), [id_ for id_, _ in gold_rows], gold, scored
            )
            self.artifacts.write_bytes(f"{prefix}/{TEST_PREDICTIONS}", kept.to_bytes())
        timings["save_seconds"] = round(time.perf_counter() - saving, 3)
        timings["train_seconds"] = round(time.perf_counter() - started, 3)
        timings["total_seconds"] = round(timings["train_seconds"] + timings.get("import_seconds", 0.0), 3)
        extra_warnings = [] if evaluation else ["no test documents: metrics were not computed"]
        return {
            "metrics": evaluation.metrics if evaluation else None,
            "per_label": evaluation.per_label if evaluation else None,
            "confusion_matrix": evaluation.confusion_matrix if evaluation else None,
            "model_info": model.describe(),
            "artifact_path": stored.path,
            "artifact_sha256": stored.sha256,
            "artifact_bytes": stored.size,
            "timings": timings,
            "warnings": list(row.warnings) + extra_warnings,
        }

    def stop(self, classifier: str, version: str) -> str:
        """Stop a version's training (its newest ``train`` job) if it is still to run or
        running; returns that job's id."""
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            row = ModelVersionRepository(session).find(classifier_row.id, version)
            if row is None:
                raise NotFound(f"classifier {classifier!r} has no version {version!r}")
            job = JobRepository(session).for_version(row.id, TrainJob.kind)
            if job is None:
                raise NotFound(f"version {version} of classifier {classifier!r} has no training job")
            job_id, status = job.id, job.status
        if status in (JobStatus.SUBMITTED.value, JobStatus.IN_PROGRESS.value):
            self.queue.request_stop(job_id)
        return job_id

    BUSY = (VersionStatus.SUBMITTED.value, VersionStatus.TRAINING.value, VersionStatus.STOP_REQUESTED.value)

    def delete_version(self, classifier: str, version: str, remove_empty_classifier: bool = False) -> None:
        """Delete a version and its files; refused while it trains, a job works on it or an
        endpoint serves it. With ``remove_empty_classifier`` (Comprehend's DeleteDocumentClassifier:
        Comprehend has no classifier without a version), deleting the last version deletes the
        classifier too, with its documents."""
        with self.database.transaction() as session:
            classifiers = ClassifierRepository(session)
            classifier_row = classifiers.get(classifier)
            versions = ModelVersionRepository(session)
            row = versions.find(classifier_row.id, version)
            if row is None:
                raise NotFound(f"classifier {classifier!r} has no version {version!r}")
            if row.status in self.BUSY:
                raise ResourceInUse(f"version {version} is {row.status}: stop its training first")
            loop = LoopRepository(session).find(classifier_row.id)
            if loop is not None and loop.active_version_id == row.id:
                raise ResourceInUse(
                    f"version {version} is the champion of classifier {classifier!r}: promote "
                    "another version first (tagloop versions promote, or rollback)"
                )
            serving = [
                e.name
                for e in EndpointRepository(session).list()
                if row.id in (e.version_id, e.desired_version_id)
            ]
            if serving:
                raise ResourceInUse(
                    f"version {version} is served by endpoint(s) {', '.join(serving)}: "
                    "move or delete the endpoint(s) first"
                )
            working = JobRepository(session).active(version_id=row.id)
            if working:
                raise ResourceInUse(
                    f"version {version} is used by job(s) {', '.join(j.id for j in working)}: "
                    "wait for them or stop them first"
                )
            prefix = f"models/{row.classifier_id}/{row.id}"
            session.delete(row)
            session.flush()
            if remove_empty_classifier and not versions.list(classifier_row.id):
                prefix = f"models/{classifier_row.id}"
                classifiers.delete(classifier_row)
        self.artifacts.delete_prefix(prefix)

    def delete_classifier(self, classifier: str) -> dict[str, Any]:
        """Delete a classifier with its versions, documents and files; refused while one of its
        versions trains, a job works on it or an endpoint serves one of its versions."""
        with self.database.transaction() as session:
            classifiers = ClassifierRepository(session)
            row = classifiers.get(classifier)
            versions = ModelVersionRepository(session).list(row.id)
            busy = [f"{v.name} ({v.status})" for v in versions if v.status in self.BUSY]
            if busy:
                raise ResourceInUse(
                    f"classifier {classifier!r} has versions in training: {', '.join(busy)}; "
                    "stop their training first"
                )
            ids = {v.id for v in versions}
            serving = [
                e.name
                for e in EndpointRepository(session).list()
                if e.classifier_id == row.id or {e.version_id, e.desired_version_id} & ids
            ]
            if serving:
                raise ResourceInUse(
                    f"classifier {classifier!r} is served by endpoint(s) {', '.join(serving)}: "
                    "delete the endpoint(s) first"
                )
            working = JobRepository(session).active(classifier_id=row.id)
            if working:
                raise ResourceInUse(
                    f"classifier {classifier!r} is used by job(s) {', '.join(j.id for j in working)}: "
                    "wait for them or stop them first"
                )
            documents = DocumentRepository(session).count_for_classifier(row.id)
            classifier_id = row.id
            classifiers.delete(row)  # the database deletes its versions, datasets and documents
            summary = {"classifier": classifier, "versions": len(versions), "documents": documents}
        self.artifacts.delete_prefix(f"models/{classifier_id}")
        return summary

    def summary(self, version_id: int) -> dict[str, Any]:
        with self.database.reading() as session:
            row = ModelVersionRepository(session).get(version_id)
            classifier = session.get_one(ClassifierRow, row.classifier_id)
            return version_summary(classifier, row)

    def train(self, request: TrainRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Submit and run the training job in this process (the CLI's ``tagloop train``)."""
        if progress is not None:
            progress(0.0, f"reading {request.data or 'the data of the latest version'}")
        submission = self.submit(request)
        self.queue.run_now(submission.job_id, progress)
        return self.summary(submission.version_id) | {"job_id": submission.job_id}


class TrainJob(JobKindBase):
    """The ``train`` job kind: trains one model version, and the one writer of that version's
    status once ``submit`` has recorded it SUBMITTED:

    ====================================  ==============  ===========================================
    from                                  to              when
    ====================================  ==============  ===========================================
    SUBMITTED                             TRAINING        its job runs (:meth:`train`)
    TRAINING                              TRAINED         the model is stored
    SUBMITTED, TRAINING                   STOP_REQUESTED  its running job is asked to stop
    SUBMITTED, TRAINING, STOP_REQUESTED   STOPPED         its job stops, or never ran (:meth:`abandoned`)
    SUBMITTED, TRAINING, STOP_REQUESTED   IN_ERROR        an error, or its job gave up
    IN_ERROR, STOPPED                     SUBMITTED       its job is retried (:meth:`retried`)
    TRAINING, IN_ERROR                    TRAINING        a later attempt of its job (``resume``)
    ====================================  ==============  ===========================================

    The hooks' moves are conditional UPDATEs (``ModelVersionRepository.transition``): a stop
    request crossing the end of a training never overwrites the status it ended with.
    """

    kind = "train"
    RUNNING = (VersionStatus.SUBMITTED.value, VersionStatus.TRAINING.value)
    NOT_ENDED = (*RUNNING, VersionStatus.STOP_REQUESTED.value)

    def __init__(self, training: TrainingService) -> None:
        self.training = training
        self.database = training.database

    # ---- the job-kind hooks ------------------------------------------------------------
    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        summary = self.train(
            int(payload["version_id"]), context.progress, context.should_stop, resume=context.attempt > 1
        )
        return {key: summary[key] for key in ("classifier", "version", "status", "metrics")}

    def stop_requested(self, session: Session, job: JobRow) -> None:
        ModelVersionRepository(session).transition(
            int(job.payload["version_id"]), VersionStatus.STOP_REQUESTED.value, when=self.RUNNING
        )

    def retried(self, session: Session, job: JobRow) -> None:
        ModelVersionRepository(session).transition(
            int(job.payload["version_id"]),
            VersionStatus.SUBMITTED.value,
            when=(VersionStatus.IN_ERROR.value, VersionStatus.STOPPED.value),
            message=None,
            ended_at=None,
        )

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        """Close a version that will not train (its job was stopped or gave up)."""
        version_status = VersionStatus.STOPPED if status == "STOPPED" else VersionStatus.IN_ERROR
        with self.database.transaction() as session:
            ModelVersionRepository(session).transition(
                int(payload["version_id"]),
                version_status.value,
                when=self.NOT_ENDED,
                message=message,
                ended_at=utcnow(),
            )
            if status == JobStatus.FAILED.value:  # the job gave up: its last word on the version
                record_training(session, int(payload["version_id"]), message)

    # ---- training a version ------------------------------------------------------------
    def train(
        self,
        version_id: int,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Train a SUBMITTED version; returns its summary (status TRAINED, or raises).

        With ``resume`` (a retried job: its worker died, or an unexpected error such as
        an unreachable artifact store ended the last attempt), a version left TRAINING or
        IN_ERROR is trained again from the start; the version that serves is never touched.
        """
        report = progress or (lambda fraction, message: None)
        row, mode = self._start(version_id, resume)
        try:
            recorded = self.training.fit(row, mode, report, should_stop)
            with self.database.transaction() as session:
                ModelVersionRepository(session).set_status(
                    version_id, VersionStatus.TRAINED.value, **recorded, ended_at=utcnow()
                )
                record_training(session, version_id)  # notifications: with the status it tells of
        except Stopped:
            self._end(version_id, VersionStatus.STOPPED, "training stopped on request")
            raise
        except TagloopError as exc:  # final: the runner does not retry it
            self._end(version_id, VersionStatus.IN_ERROR, exc.message, notify=True)
            raise
        except Exception as exc:
            self._end(version_id, VersionStatus.IN_ERROR, f"internal error: {type(exc).__name__}: {exc}")
            raise
        report(1.0, "trained")
        return self.training.summary(version_id)

    def _start(self, version_id: int, resume: bool) -> tuple[ModelVersionRow, Mode]:
        """Move the version to TRAINING (or, if its job was asked to stop, to STOPPED and raise)."""
        runnable = [VersionStatus.SUBMITTED.value]
        if resume:
            runnable += [VersionStatus.TRAINING.value, VersionStatus.IN_ERROR.value]
        with self.database.transaction() as session:
            versions = ModelVersionRepository(session)
            row = versions.get(version_id)
            started = versions.transition(
                version_id,
                VersionStatus.TRAINING.value,
                when=runnable,
                started_at=utcnow(),
                message=None,
                ended_at=None,
            )
            stopped = not started and versions.transition(
                version_id,
                VersionStatus.STOPPED.value,
                when=(VersionStatus.STOP_REQUESTED.value,),
                message="training stopped on request",
                ended_at=utcnow(),
            )
            if not (started or stopped):
                session.refresh(row)
                raise ResourceInUse(f"version {row.name} is {row.status}, not SUBMITTED")
            mode = Mode(session.get_one(ClassifierRow, row.classifier_id).mode)
        if stopped:
            raise Stopped("training stopped on request")
        return row, mode

    def _end(self, version_id: int, status: VersionStatus, message: str, notify: bool = False) -> None:
        """``notify``: record ``training.failed`` (an error the job is not retried after; an
        unexpected one may be, and :meth:`abandoned` records it once the job gives up)."""
        with self.database.transaction() as session:
            ModelVersionRepository(session).set_status(
                version_id, status.value, message=message, ended_at=utcnow()
            )
            if notify:
                record_training(session, version_id, message)
