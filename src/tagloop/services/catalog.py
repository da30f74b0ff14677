"""Classifiers and their model versions: lookup, creation, listing, version resolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from tagloop.domain.metrics import METRIC_NAMES, PER_LABEL_NAMES
from tagloop.domain.names import check_name
from tagloop.domain.records import Mode, VersionStatus
from tagloop.errors import InvalidRequest, NotFound, ResourceUnavailable
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository
from tagloop.storage.tables import ClassifierRow, ModelVersionRow


def get_or_create_classifier(session: Session, name: str, mode: Mode, delimiter: str) -> ClassifierRow:
    """The classifier ``name``; created with ``mode`` if new, else ``mode`` must match."""
    repo = ClassifierRepository(session)
    row = repo.find(check_name("classifier", name))
    if row is None:
        return repo.add(name, mode.value, delimiter)
    if row.mode != mode.value:
        raise InvalidRequest(
            f"classifier {name!r} is {row.mode}; train it as {row.mode} or choose another classifier name"
        )
    return row


def resolve_version(session: Session, classifier: ClassifierRow, version: str | None) -> ModelVersionRow:
    """The named version, or the newest trained one; it must be trained."""
    versions = ModelVersionRepository(session)
    if version is None:
        row = versions.latest(classifier.id, VersionStatus.TRAINED.value)
        if row is None:
            raise ResourceUnavailable(f"classifier {classifier.name!r} has no trained model version yet")
        return row
    row = versions.find(classifier.id, version)
    if row is None:
        raise NotFound(f"classifier {classifier.name!r} has no version {version!r}")
    if row.status != VersionStatus.TRAINED.value:
        raise ResourceUnavailable(f"version {version!r} of {classifier.name!r} is {row.status}, not TRAINED")
    return row


def in_order(mapping: dict[str, Any] | None, order: Sequence[str]) -> dict[str, Any] | None:
    """``mapping`` with its keys in ``order`` (others after, as stored): PostgreSQL's JSONB
    keeps no key order, and users read metrics and labels in the order they were made."""
    if mapping is None:
        return None
    rank = {key: position for position, key in enumerate(order)}
    return dict(sorted(mapping.items(), key=lambda item: rank.get(item[0], len(rank))))


def version_summary(classifier: ClassifierRow, row: ModelVersionRow) -> dict[str, Any]:
    return {
        "classifier": classifier.name,
        "version": row.name,
        "number": row.number,
        "status": row.status,
        "message": row.message,
        "mode": classifier.mode,
        "recipe": row.recipe,
        "metrics": in_order(row.metrics, METRIC_NAMES),
        "labels": row.labels,
        "documents": row.documents,
        "label_counts": in_order(row.label_counts, row.labels),
        "data_fingerprint": row.data_fingerprint,
        "train_seconds": (row.timings or {}).get("total_seconds"),
        "timings": row.timings,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "warnings": row.warnings,
    }


class Catalog:
    def __init__(self, database: Database) -> None:
        self.database = database

    def classifiers(self) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            result = []
            versions = ModelVersionRepository(session)
            for row in ClassifierRepository(session).list():
                all_versions = versions.list(row.id)
                trained = [v for v in all_versions if v.status == VersionStatus.TRAINED.value]
                result.append(
                    {
                        "name": row.name,
                        "mode": row.mode,
                        "label_delimiter": row.label_delimiter,
                        "versions": len(all_versions),
                        "latest_trained_version": trained[-1].name if trained else None,
                        "created_at": row.created_at.isoformat(),
                    }
                )
            return result

    def versions(self, classifier: str) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            return [version_summary(row, v) for v in ModelVersionRepository(session).list(row.id)]

    def version(self, classifier: str, version: str) -> dict[str, Any]:
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            found = ModelVersionRepository(session).find(row.id, version)
            if found is None:
                raise NotFound(f"classifier {classifier!r} has no version {version!r}")
            summary = version_summary(row, found)
            summary.update(
                per_label=in_order(
                    {
                        label: in_order(figures, PER_LABEL_NAMES)
                        for label, figures in (found.per_label or {}).items()
                    },
                    found.labels,
                )
                if found.per_label is not None
                else None,
                confusion_matrix=found.confusion_matrix,
                parameters=found.parameters,
                model=found.model_info,
                library_versions=found.library_versions,
                artifact={
                    "path": found.artifact_path,
                    "sha256": found.artifact_sha256,
                    "bytes": found.artifact_bytes,
                },
            )
            return summary
