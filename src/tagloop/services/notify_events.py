"""The events of training, deployment and batch jobs, recorded inside the transaction that
commits the state they tell of (so an event exists if and only if that state does).

Their payloads hold the figures and identifiers a message needs (``domain/notifications.py``
renders them): classifier, version, metrics, the weakest labels, endpoint, job.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tagloop.domain.metrics import METRIC_NAMES
from tagloop.domain.notifications import worst_labels
from tagloop.storage.events import EventRepository
from tagloop.storage.tables import ClassifierRow, JobRow, ModelVersionRow

HEADLINE_METRICS = ("Accuracy", "F1Score", "Precision", "Recall", "MicroF1Score", "HammingLoss")


def _metrics(row: ModelVersionRow) -> dict[str, float]:
    return {
        name: value
        for name, value in (row.metrics or {}).items()
        if name in METRIC_NAMES and name in HEADLINE_METRICS
    }


def _train_job(session: Session, version_id: int) -> str | None:
    return session.scalar(
        select(JobRow.id)
        .where(JobRow.version_id == version_id, JobRow.kind == "train")
        .order_by(JobRow.created_at.desc())
        .limit(1)
    )


def record_training(session: Session, version_id: int, message: str | None = None) -> None:
    """``training.completed`` for a TRAINED version, else ``training.failed`` with ``message``."""
    row = session.get_one(ModelVersionRow, version_id, populate_existing=True)
    classifier = session.get_one(ClassifierRow, row.classifier_id)
    payload: dict[str, Any] = {
        "classifier": classifier.name,
        "version": row.name,
        "version_id": row.id,
        "status": row.status,
        "job_id": _train_job(session, version_id),
    }
    if row.status == "TRAINED":
        kind = "training.completed"
        payload |= {
            "metrics": _metrics(row),
            "worst_labels": worst_labels(row.per_label),
            "documents": row.documents,
            "labels": list(row.labels or []),
            "recipe": row.recipe,
            "train_seconds": (row.timings or {}).get("total_seconds"),
        }
    else:
        kind = "training.failed"
        payload["message"] = message or row.message
    EventRepository(session).add(kind, payload, classifier_id=classifier.id)


def record_deployment(
    session: Session, endpoint: str, version_id: int, previous_id: int | None, failed: str | None = None
) -> None:
    """``endpoint.deployed`` (the endpoint now serves ``version_id``), or ``endpoint.failed``."""
    version = session.get_one(ModelVersionRow, version_id)
    classifier = session.get_one(ClassifierRow, version.classifier_id)
    previous = session.get(ModelVersionRow, previous_id) if previous_id not in (None, version_id) else None
    payload: dict[str, Any] = {
        "endpoint": endpoint,
        "classifier": classifier.name,
        "version": version.name,
        "version_id": version.id,
        "previous": previous.name if previous is not None else None,
    }
    if failed is None:
        kind = "endpoint.deployed"
        payload |= {"status": "IN_SERVICE", "metrics": _metrics(version)}
    else:
        kind = "endpoint.failed"
        payload |= {"status": "FAILED", "message": failed}
    EventRepository(session).add(kind, payload, classifier_id=classifier.id, endpoint=endpoint)


def record_batch(session: Session, job: JobRow) -> None:
    """``batch.completed`` / ``batch.failed`` for a batch job that just ended (stopped ones: none)."""
    if job.status not in ("COMPLETED", "FAILED"):
        return
    version = session.get(ModelVersionRow, job.version_id) if job.version_id is not None else None
    classifier = session.get(ClassifierRow, job.classifier_id) if job.classifier_id is not None else None
    payload: dict[str, Any] = {
        "job_id": job.id,
        "classifier": classifier.name if classifier is not None else None,
        "version": version.name if version is not None else None,
        "name": (job.payload or {}).get("name"),
        "input": (job.payload or {}).get("input"),
    }
    if job.status == "COMPLETED":
        result = job.result or {}
        kind = "batch.completed"
        payload |= {
            "documents": result.get("documents"),
            "errors": result.get("errors"),
            "output": result.get("output") or (job.payload or {}).get("output_uri"),
        }
    else:
        kind = "batch.failed"
        payload["message"] = job.error
    EventRepository(session).add(kind, payload, classifier_id=job.classifier_id)
