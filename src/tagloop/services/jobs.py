"""Job records users can see and act on: list, show, stop, retry, wait."""

from __future__ import annotations

from typing import Any

from tagloop.domain.records import JobStatus, VersionStatus
from tagloop.errors import ResourceInUse
from tagloop.jobs.port import JobQueue
from tagloop.storage.database import Database
from tagloop.storage.repositories import JobRepository, ModelVersionRepository
from tagloop.storage.tables import ClassifierRow, JobRow, ModelVersionRow


def job_summary(row: JobRow, classifier: str | None = None, version: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "progress": row.progress,
        "progress_message": row.progress_message,
        "error": row.error,
        "attempts": row.attempts,
        "classifier": classifier,
        "version": version,
        "result": row.result,
        "payload": row.payload,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }


class JobService:
    def __init__(self, database: Database, queue: JobQueue) -> None:
        self.database = database
        self.queue = queue

    def _summary(self, session: Any, row: JobRow) -> dict[str, Any]:
        classifier = session.get(ClassifierRow, row.classifier_id) if row.classifier_id else None
        version = session.get(ModelVersionRow, row.version_id) if row.version_id else None
        return job_summary(row, classifier.name if classifier else None, version.name if version else None)

    def list(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            return [self._summary(session, row) for row in JobRepository(session).list(limit, status)]

    def show(self, job_id: str) -> dict[str, Any]:
        with self.database.reading() as session:
            return self._summary(session, JobRepository(session).get(job_id))

    def stop(self, job_id: str) -> dict[str, Any]:
        """Ask a job to stop: one not started stops at once, a running one within seconds."""
        self.queue.request_stop(job_id)
        with self.database.transaction() as session:
            row = JobRepository(session).get(job_id)
            if row.version_id is not None and row.status == JobStatus.STOP_REQUESTED.value:
                version = ModelVersionRepository(session).get(row.version_id)
                if version.status in (VersionStatus.SUBMITTED.value, VersionStatus.TRAINING.value):
                    version.status = VersionStatus.STOP_REQUESTED.value
            session.flush()
            return self._summary(session, row)

    def retry(self, job_id: str) -> dict[str, Any]:
        """Queue a FAILED or STOPPED job again (its attempts start over)."""
        with self.database.transaction() as session:
            row = JobRepository(session).get(job_id)
            if row.status not in (JobStatus.FAILED.value, JobStatus.STOPPED.value):
                raise ResourceInUse(
                    f"job {job_id} is {row.status}; only FAILED or STOPPED jobs can be retried"
                )
            row.status = JobStatus.SUBMITTED.value
            row.attempts = 0
            row.lease_owner = None
            row.lease_expires_at = None
            row.ended_at = None
            row.progress = 0.0
            row.progress_message = None
            if row.version_id is not None:
                version = ModelVersionRepository(session).get(row.version_id)
                if version.status in (VersionStatus.IN_ERROR.value, VersionStatus.STOPPED.value):
                    version.status = VersionStatus.SUBMITTED.value
                    version.message = None
                    version.ended_at = None
            session.flush()
            self.queue.requeue(session, row.id)
            return self._summary(session, row)
