"""Comprehend's flywheels on tagloop's learning loops: a flywheel is a classifier's loop known
by a name (``LoopRow.name``), its active model the loop's champion, its datasets the loop's
datasets (``storage/loop_datasets.py``), its iterations the loop's iterations.

- A flywheel made on an existing model (``version``) adopts that classifier's loop (made if
  the classifier has none yet) and makes the version its champion; a classifier has one loop,
  so one flywheel.
- A flywheel made from a task configuration (Comprehend's ``TaskConfig``) makes a new classifier
  of the flywheel's name, with no version yet, in the configuration's mode; its labels, when
  given, bound what its datasets may hold.
- A dataset is imported when it is created (COMPREHEND_CSV, one file): its documents join the
  classifier's documents with the split of its kind (TRAIN: ``train``, TEST: ``test``); a file
  with bad rows is refused whole, listing them, and nothing is kept.
- Deleting a flywheel forgets its name, Comprehend fields and datasets; the classifier, its
  versions, champion, endpoints and iteration history stay (as Comprehend keeps the models),
  except a classifier the flywheel made that still has no version and no endpoint.

The data lake location and the data access role are recorded and shown, never used: tagloop
keeps the loop's data in its own database and artifact store.
"""

from __future__ import annotations

import builtins
import unicodedata
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tagloop.domain.formats import COMPREHEND_CSV, FormatSpec
from tagloop.domain.limits import Limits
from tagloop.domain.names import check_name
from tagloop.domain.records import Mode, Split
from tagloop.errors import AlreadyExists, DatasetInvalid, InvalidRequest, ResourceInUse
from tagloop.services.catalog import resolve_version
from tagloop.services.datasets import ReadOptions, import_dataset
from tagloop.services.iterations import MAX_LIST, IterationService
from tagloop.services.loops import LoopService, ensure_loop
from tagloop.settings import Settings
from tagloop.storage.database import Database
from tagloop.storage.loop_datasets import (
    COMPLETED,
    TEST,
    TRAIN,
    FlywheelRepository,
    LoopDatasetRepository,
)
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository
from tagloop.storage.tables import (
    ClassifierRow,
    EndpointRow,
    LoopDatasetRow,
    LoopRow,
    ModelVersionRow,
    utcnow,
)

DOCUMENT_CLASSIFIER = "DOCUMENT_CLASSIFIER"
ACTIVE = "ACTIVE"
DEFAULT_DELIMITER = "|"
MAX_TAGS = 200


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class FlywheelService:
    def __init__(
        self, database: Database, settings: Settings, loops: LoopService, iterations: IterationService
    ) -> None:
        self.database = database
        self.settings = settings
        self.loops = loops
        self.iterations = iterations

    # ---- flywheels ---------------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        classifier: str | None = None,
        version: str | None = None,
        task_config: dict[str, Any] | None = None,
        model_type: str | None = None,
        data_lake_uri: str | None = None,
        role_arn: str | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Make flywheel ``name`` on ``classifier`` (its ``version``, else its newest TRAINED one,
        becomes the champion) or, with ``task_config``, on a new classifier of that name."""
        check_name("flywheel", name)
        if model_type not in (None, DOCUMENT_CLASSIFIER):
            raise InvalidRequest(
                f"ModelType {model_type} is not supported: tagloop trains document classifiers"
            )
        if (classifier is None) == (task_config is None):
            raise InvalidRequest("give either ActiveModelArn, or TaskConfig and ModelType")
        if task_config is not None and model_type is None:
            raise InvalidRequest("ModelType is required with TaskConfig")
        tags = _checked_tags(tags or [])
        promote_to: tuple[str, str] | None = None
        with self.database.transaction() as session:
            flywheels = FlywheelRepository(session)
            if flywheels.find(name) is not None:
                raise AlreadyExists(f"flywheel {name!r} exists already")
            if classifier is not None:
                classifier_row = ClassifierRepository(session).get(classifier)
                version_row = resolve_version(session, classifier_row, version)
                loop = flywheels.for_classifier(classifier_row.id)
                if loop is not None and loop.name is not None:
                    raise ResourceInUse(
                        f"classifier {classifier!r} already has flywheel {loop.name!r}: a classifier has one"
                    )
                if loop is None:
                    loop = ensure_loop(session, classifier_row)
                if loop.active_version_id is None:
                    loop.active_version_id = version_row.id
                elif loop.active_version_id != version_row.id:
                    promote_to = (classifier_row.name, version_row.name)  # re-points followers
                task_config = {
                    "LanguageCode": "en",
                    "DocumentClassificationConfig": {
                        "Mode": classifier_row.mode,
                        "Labels": list(version_row.labels),
                    },
                }
            else:
                assert task_config is not None
                mode, labels, language = self._task(task_config)
                if ClassifierRepository(session).find(name) is not None:
                    raise ResourceInUse(
                        f"a classifier named {name!r} exists already: make the flywheel on one of its "
                        "versions (ActiveModelArn), or choose another flywheel name"
                    )
                classifier_row = ClassifierRepository(session).add(name, mode.value, DEFAULT_DELIMITER)
                loop = ensure_loop(session, classifier_row)
                config: dict[str, Any] = {"Mode": mode.value}
                if labels is not None:
                    config["Labels"] = labels
                task_config = {"LanguageCode": language, "DocumentClassificationConfig": config}
            loop.name = name
            loop.status = ACTIVE
            loop.message = None
            loop.data_lake_uri = data_lake_uri
            loop.role_arn = role_arn
            loop.model_type = DOCUMENT_CLASSIFIER
            loop.task_config = task_config
            loop.tags = tags
            loop.updated_at = utcnow()
        if promote_to is not None:
            self._promoted(*promote_to, reason="CreateFlywheel")
        return self.show(name)

    def _task(self, task_config: dict[str, Any]) -> tuple[Mode, list[str] | None, str]:
        if task_config.get("EntityRecognitionConfig") is not None:
            raise InvalidRequest(
                "TaskConfig.EntityRecognitionConfig is not supported: tagloop trains document classifiers"
            )
        config = task_config.get("DocumentClassificationConfig")
        if not isinstance(config, dict):
            raise InvalidRequest("TaskConfig.DocumentClassificationConfig is required")
        mode = Mode.parse(str(config.get("Mode", "")))
        labels = config.get("Labels")
        if labels is not None:
            labels = self._labels(labels, mode)
        return mode, labels, str(task_config.get("LanguageCode", "en"))

    def _labels(self, labels: Any, mode: Mode) -> list[str]:
        limits = Limits.from_settings(self.settings)
        if not isinstance(labels, list):
            raise InvalidRequest("TaskConfig.DocumentClassificationConfig.Labels must be a list")
        most = limits.max_labels_multi_class if mode is Mode.MULTI_CLASS else limits.max_labels_multi_label
        if len(labels) > most:
            raise InvalidRequest(
                f"TaskConfig has {len(labels):,} labels; {mode.value} takes at most {most:,}"
            )
        seen: set[str] = set()
        for label in labels:
            if not isinstance(label, str) or not label.strip():
                raise InvalidRequest("TaskConfig labels must be non-empty strings")
            if len(label) > limits.max_label_chars:
                raise InvalidRequest(
                    f"a TaskConfig label is longer than {limits.max_label_chars:,} characters"
                )
            if any(unicodedata.category(char).startswith("C") for char in label):
                raise InvalidRequest(f"TaskConfig label {label[:50]!r} holds control characters")
            if DEFAULT_DELIMITER in label:
                raise InvalidRequest(
                    f"TaskConfig label {label[:50]!r} holds the label delimiter {DEFAULT_DELIMITER!r}"
                )
            if label in seen:
                raise InvalidRequest(f"TaskConfig label {label[:50]!r} is listed twice")
            seen.add(label)
        if mode is Mode.MULTI_CLASS and len(labels) == 1:
            raise InvalidRequest("a MULTI_CLASS TaskConfig needs at least 2 labels")
        return list(labels)

    def show(self, name: str) -> dict[str, Any]:
        with self.database.reading() as session:
            return self._summary(session, FlywheelRepository(session).get(name))

    def list(
        self,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            rows = FlywheelRepository(session).list(status, created_after, created_before)
            return [self._summary(session, row) for row in rows]

    @staticmethod
    def _summary(session: Session, row: LoopRow) -> dict[str, Any]:
        classifier = session.get_one(ClassifierRow, row.classifier_id)
        active = session.get(ModelVersionRow, row.active_version_id) if row.active_version_id else None
        latest = FlywheelRepository(session).latest_iteration(row.id)
        return {
            "name": row.name,
            "classifier": classifier.name,
            "mode": classifier.mode,
            "active_version": active.name if active else None,
            "status": row.status,
            "message": row.message,
            "data_lake_uri": row.data_lake_uri,
            "role_arn": row.role_arn,
            "model_type": row.model_type or DOCUMENT_CLASSIFIER,
            "task_config": row.task_config,
            "tags": row.tags or [],
            "latest_iteration": latest.name if latest else None,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
        }

    def classifier_of(self, name: str) -> str:
        """The classifier whose loop flywheel ``name`` is."""
        with self.database.reading() as session:
            row = FlywheelRepository(session).get(name)
            return session.get_one(ClassifierRow, row.classifier_id).name

    def flywheel_of(self, classifier: str) -> str | None:
        """The flywheel name of ``classifier``'s loop, if it has one."""
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).find(classifier)
            if classifier_row is None:
                return None
            loop = FlywheelRepository(session).for_classifier(classifier_row.id)
            return loop.name if loop is not None else None

    def update(
        self,
        name: str,
        *,
        classifier: str | None = None,
        version: str | None = None,
        role_arn: str | None = None,
    ) -> dict[str, Any]:
        """Record a new data access role and/or make ``version`` of ``classifier`` (which must be
        the flywheel's) the active model: a manual promotion, re-pointing following endpoints."""
        with self.database.transaction() as session:
            row = FlywheelRepository(session).get(name)
            classifier_row = session.get_one(ClassifierRow, row.classifier_id)
            if classifier is not None:
                if classifier != classifier_row.name:
                    raise InvalidRequest(
                        f"ActiveModelArn must be a version of classifier {classifier_row.name!r}, "
                        f"the flywheel's model"
                    )
                version_row = resolve_version(session, classifier_row, version)
                version = version_row.name
            if role_arn is not None:
                row.role_arn = role_arn
                row.updated_at = utcnow()
        if classifier is not None and version is not None:
            self._promoted(classifier, version, reason="UpdateFlywheel")
        return self.show(name)

    def _promoted(self, classifier: str, version: str, reason: str) -> None:
        """A manual promotion: the champion and every following endpoint, in one transaction."""
        self.loops.promote(classifier, version, reason=reason)

    def delete(self, name: str) -> None:
        with self.database.transaction() as session:
            flywheels = FlywheelRepository(session)
            row = flywheels.get(name)
            running = flywheels.running_iteration(row.id)
            if running is not None:
                raise ResourceInUse(
                    f"flywheel {name!r} has iteration {running.name} {running.status}: wait for it or stop it"
                )
            LoopDatasetRepository(session).delete_for_loop(row.id)
            classifier_row = session.get_one(ClassifierRow, row.classifier_id)
            versions = ModelVersionRepository(session).list(classifier_row.id)
            endpoints = session.scalar(
                select(func.count())
                .select_from(EndpointRow)
                .where(EndpointRow.classifier_id == classifier_row.id)
            )
            if not versions and not endpoints and row.model_type == DOCUMENT_CLASSIFIER and row.task_config:
                made_here = classifier_row.name == name
                if made_here:
                    ClassifierRepository(session).delete(classifier_row)  # its loop goes with it
                    return
            row.name = None
            row.data_lake_uri = None
            row.role_arn = None
            row.model_type = None
            row.task_config = None
            row.tags = []
            row.updated_at = utcnow()

    # ---- iterations --------------------------------------------------------------------
    def start_iteration(self, flywheel: str) -> dict[str, Any]:
        """Start an iteration of the flywheel's loop (ResourceInUse while one runs)."""
        return self.iterations.start(self.classifier_of(flywheel), trigger="api")

    def iteration(self, flywheel: str, iteration: str) -> dict[str, Any]:
        return self.iterations.get(self.classifier_of(flywheel), iteration)

    def history(
        self,
        flywheel: str,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The flywheel's iterations, newest first, created within the bounds given."""
        classifier = self.classifier_of(flywheel)
        found: builtins.list[dict[str, Any]] = []
        after = None
        while True:
            chunk = self.iterations.list(classifier, MAX_LIST, after, created_after, created_before)
            found += chunk
            if len(chunk) < MAX_LIST:
                return found
            after = chunk[-1]["iteration"]

    # ---- datasets ----------------------------------------------------------------------
    def create_dataset(
        self,
        flywheel: str,
        name: str,
        source: str,
        kind: str = TRAIN,
        delimiter: str = DEFAULT_DELIMITER,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Import ``source`` (a COMPREHEND_CSV file: the caller checked the location) as dataset
        ``name`` of the flywheel: TRAIN documents join later challengers' training data, TEST
        documents the frozen test set. Refused whole (DatasetInvalid) if a row is bad."""
        check_name("dataset", name)
        if kind not in (TRAIN, TEST):
            raise InvalidRequest(f"DatasetType must be TRAIN or TEST, not {kind!r}")
        limits = Limits.from_settings(self.settings)
        with self.database.transaction() as session:
            loop = FlywheelRepository(session).get(flywheel)
            datasets = LoopDatasetRepository(session)
            if datasets.find(loop.id, name) is not None:
                raise AlreadyExists(f"flywheel {flywheel!r} already has a dataset named {name!r}")
            classifier = session.get_one(ClassifierRow, loop.classifier_id)
            options = ReadOptions(
                FormatSpec.infer(source, COMPREHEND_CSV),
                Mode.parse(classifier.mode),
                delimiter,
                limits,
                warn_rare_labels=kind == TRAIN,
            )
            split = Split.TRAIN if kind == TRAIN else Split.TEST
            dataset, report = import_dataset(session, classifier, source, options, split)
            allowed = ((loop.task_config or {}).get("DocumentClassificationConfig") or {}).get("Labels")
            if allowed and loop.active_version_id is None:  # a new model: the task's labels bound it
                unknown = sorted(set(report.label_counts) - set(allowed))
                if unknown:
                    shown = ", ".join(repr(label[:50]) for label in unknown[:10])
                    raise DatasetInvalid(source, [], [f"labels not in the flywheel's TaskConfig: {shown}"])
            row = datasets.add(
                loop_id=loop.id,
                dataset_id=dataset.id,
                name=name,
                kind=kind,
                description=description,
                source=source,
                status=COMPLETED,
                documents=report.documents,
                created_at=utcnow(),
                ended_at=utcnow(),
            )
            return self._dataset_summary(flywheel, row)

    def dataset(self, flywheel: str, name: str) -> dict[str, Any]:
        with self.database.reading() as session:
            loop = FlywheelRepository(session).get(flywheel)
            return self._dataset_summary(flywheel, LoopDatasetRepository(session).get(loop.id, name))

    def datasets(
        self,
        flywheel: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The datasets of ``flywheel`` (None: of every flywheel), oldest first."""
        with self.database.reading() as session:
            flywheels = FlywheelRepository(session)
            if flywheel is not None:
                names = {flywheels.get(flywheel).id: flywheel}
            else:
                names = {row.id: str(row.name) for row in flywheels.list()}
            rows = LoopDatasetRepository(session).list(
                list(names), kind, status, created_after, created_before
            )
            return [self._dataset_summary(names[row.loop_id], row) for row in rows]

    @staticmethod
    def _dataset_summary(flywheel: str, row: LoopDatasetRow) -> dict[str, Any]:
        return {
            "flywheel": flywheel,
            "name": row.name,
            "kind": row.kind,
            "description": row.description,
            "source": row.source,
            "status": row.status,
            "message": row.message,
            "documents": row.documents,
            "created_at": _iso(row.created_at),
            "ended_at": _iso(row.ended_at),
        }


def _checked_tags(tags: list[dict[str, str]]) -> list[dict[str, str]]:
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"at most {MAX_TAGS} tags")
    keys = [tag.get("Key") for tag in tags]
    if len(set(keys)) != len(keys):
        raise InvalidRequest("tag keys must be unique")
    if any(str(key).lower().startswith("aws:") for key in keys):
        raise InvalidRequest("tag keys starting with 'aws:' are reserved")
    return [{"Key": str(tag["Key"]), "Value": str(tag.get("Value", ""))} for tag in tags]
