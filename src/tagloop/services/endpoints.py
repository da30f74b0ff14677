"""Endpoints: named pointers to one model version, re-pointed atomically and followed live.

Every process resolves an endpoint through a small cache whose entries are at most
``refresh_seconds`` (default 0.5 s) old; a server refreshes them from a background thread
(:meth:`EndpointService.follow`), so requests never wait for the database or for a model
to load, and a re-pointed endpoint serves the new version in every process (several
``--workers``, several machines on one database) within a second. A request already
holding the old model finishes with it: nothing in flight fails.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from tagloop.domain.models import TextModel
from tagloop.domain.names import check_name
from tagloop.domain.records import VersionStatus
from tagloop.errors import AlreadyExists, InvalidRequest, NotFound, ResourceUnavailable, TagloopError
from tagloop.services.catalog import resolve_version
from tagloop.services.models import ModelCache
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository, EndpointRepository, ModelVersionRepository
from tagloop.storage.tables import ClassifierRow, EndpointRow, ModelVersionRow, utcnow

IN_SERVICE = "IN_SERVICE"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """What an endpoint serves right now."""

    endpoint: str
    classifier: str
    version: str
    version_id: int
    model: TextModel


def endpoint_summary(row: EndpointRow, classifier: ClassifierRow, version: ModelVersionRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "classifier": classifier.name,
        "version": version.name,
        "mode": classifier.mode,
        "status": row.status,
        "desired_inference_units": row.desired_inference_units,
        "current_inference_units": row.desired_inference_units,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


class EndpointService:
    def __init__(self, database: Database, models: ModelCache, refresh_seconds: float = 0.5) -> None:
        self.database = database
        self.models = models
        self.refresh_seconds = refresh_seconds
        self._cache: dict[str, tuple[float, Serving]] = {}
        self._lock = threading.Lock()
        self._follower: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---- management ------------------------------------------------------------------
    def create(
        self, name: str, classifier: str, version: str | None = None, inference_units: int = 1
    ) -> dict[str, Any]:
        check_name("endpoint", name)
        if inference_units < 1:
            raise InvalidRequest("desired inference units must be at least 1")
        with self.database.transaction() as session:
            endpoints = EndpointRepository(session)
            if endpoints.find(name) is not None:
                raise AlreadyExists(f"endpoint {name!r} exists already")
            classifier_row = ClassifierRepository(session).get(classifier)
            version_row = resolve_version(session, classifier_row, version)
            row = endpoints.add(
                name=name,
                classifier_id=classifier_row.id,
                version_id=version_row.id,
                desired_inference_units=inference_units,
                status=IN_SERVICE,
            )
            return endpoint_summary(row, classifier_row, version_row)

    def update(
        self, name: str, version: str | None = None, inference_units: int | None = None
    ) -> dict[str, Any]:
        """Re-point ``name`` at ``version`` (default: the newest trained) in one UPDATE."""
        with self.database.transaction() as session:
            row = EndpointRepository(session).get(name)
            classifier_row = session.get_one(ClassifierRow, row.classifier_id)
            version_row = resolve_version(session, classifier_row, version)
            row.version_id = version_row.id
            if inference_units is not None:
                if inference_units < 1:
                    raise InvalidRequest("desired inference units must be at least 1")
                row.desired_inference_units = inference_units
            row.updated_at = utcnow()
            session.flush()
            summary = endpoint_summary(row, classifier_row, version_row)
        self._forget(name)
        return summary

    def delete(self, name: str) -> None:
        with self.database.transaction() as session:
            session.delete(EndpointRepository(session).get(name))
        self._forget(name)

    def list(self) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            return [self._summary(session, row) for row in EndpointRepository(session).list()]

    def show(self, name: str) -> dict[str, Any]:
        with self.database.reading() as session:
            return self._summary(session, EndpointRepository(session).get(name))

    @staticmethod
    def _summary(session: Any, row: EndpointRow) -> dict[str, Any]:
        classifier = session.get_one(ClassifierRow, row.classifier_id)
        version = ModelVersionRepository(session).get(row.version_id)
        return endpoint_summary(row, classifier, version)

    # ---- serving ---------------------------------------------------------------------
    def cached(self, name: str) -> Serving | None:
        """What ``name`` serves, if this process knows it and checked it within
        ``refresh_seconds``; ``None`` means: ask :meth:`serving` (off the event loop)."""
        entry = self._cache.get(name)
        if entry is not None and time.monotonic() - entry[0] < self.refresh_seconds:
            return entry[1]
        return None

    def serving(self, name: str, refresh: bool = False) -> Serving:
        """The model ``name`` serves now (from memory if checked within ``refresh_seconds``)."""
        if not refresh and (known := self.cached(name)) is not None:
            return known
        with self._lock:
            cached = self._cache.get(name)
        with self.database.reading() as session:
            row = EndpointRepository(session).find(name)
            if row is None:
                self._forget(name)
                raise NotFound(f"no endpoint named {name!r}")
            version = ModelVersionRepository(session).get(row.version_id)
            classifier = session.get_one(ClassifierRow, row.classifier_id)
        if version.status != VersionStatus.TRAINED.value:
            self._forget(name)
            raise ResourceUnavailable(
                f"endpoint {name!r} points at version {version.name}, which is {version.status}"
            )
        current = cached[1] if cached is not None and cached[1].version_id == version.id else None
        serving = current or Serving(
            name, classifier.name, version.name, version.id, self.models.get(version)
        )
        with self._lock:
            self._cache[name] = (time.monotonic(), serving)
        return serving

    def follow(self) -> None:
        """Keep the endpoints this process serves fresh from a background thread, so requests
        find them in memory and a new version's model is loaded before it is swapped in."""
        with self._lock:
            if self._follower is not None and self._follower.is_alive():
                return
            self._stopping.clear()
            self._follower = threading.Thread(target=self._follow, name="tagloop-endpoints", daemon=True)
            self._follower.start()

    def _follow(self) -> None:
        while not self._stopping.wait(self.refresh_seconds / 2):
            for name in list(self._cache):
                try:
                    self.serving(name, refresh=True)
                except TagloopError:
                    pass  # gone or not servable: requests get the error from serving()
                except Exception:
                    log.exception("refreshing endpoint %s failed", name)

    def stop_following(self) -> None:
        self._stopping.set()
        with self._lock:
            follower, self._follower = self._follower, None
        if follower is not None:
            follower.join(timeout=10)

    def _forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)
