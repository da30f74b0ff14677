"""Endpoints: named pointers to one model version, re-pointed atomically and followed live.

Every process resolves an endpoint through a small cache whose entries are at most
``refresh_seconds`` (default 0.5 s) old; a server refreshes them from a background thread
(:meth:`EndpointService.follow`), so requests never wait for the database or for a model
to load, and a re-pointed endpoint serves the new version in every process (several
``--workers``, several machines on one database) within a second. A request already
holding the old model finishes with it: nothing in flight fails.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from tagloop.domain.limits import MAX_INFERENCE_UNITS
from tagloop.domain.names import check_name
from tagloop.domain.records import VersionStatus
from tagloop.domain.routing import RoutingPolicy
from tagloop.errors import (
    AlreadyExists,
    ArtifactCorrupt,
    ArtifactMissing,
    InvalidRequest,
    NotFound,
    ResourceInUse,
    ResourceUnavailable,
    TagloopError,
)
from tagloop.jobs.port import JobContext, JobKindBase, JobQueue
from tagloop.recipes.base import TextModel
from tagloop.services.catalog import resolve_version
from tagloop.services.loops import ensure_loop, promote_in
from tagloop.services.model_cache import ModelCache
from tagloop.services.notify_events import record_deployment
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository, EndpointRepository, ModelVersionRepository
from tagloop.storage.tables import ClassifierRow, EndpointRow, ModelVersionRow, utcnow

CREATING, IN_SERVICE, UPDATING, FAILED = "CREATING", "IN_SERVICE", "UPDATING", "FAILED"
DEPLOY_JOB = "deploy"
log = logging.getLogger(__name__)


def _check_units(units: int) -> None:
    if not 1 <= units <= MAX_INFERENCE_UNITS:
        raise InvalidRequest(f"desired inference units must be from 1 to {MAX_INFERENCE_UNITS}")


@dataclass(frozen=True)
class Serving:
    """What an endpoint serves right now."""

    endpoint: str
    classifier: str
    version: str
    version_id: int
    model: TextModel
    routing: RoutingPolicy | None = None
    """The endpoint's review routing policy when one is set and active (None: nothing routed)."""
    classifier_id: int | None = None


def endpoint_summary(
    row: EndpointRow,
    classifier: ClassifierRow,
    version: ModelVersionRow,
    desired: ModelVersionRow | None = None,
) -> dict[str, Any]:
    """An endpoint as the APIs and the CLI show it.

    Inference units are only recorded: nothing is provisioned per endpoint (a server's
    processes serve every endpoint), so the current units reported are the desired ones.
    """
    return {
        "name": row.name,
        "classifier": classifier.name,
        "version": version.name,
        "desired_version": (desired or version).name,
        "mode": classifier.mode,
        "status": row.status,
        "message": row.message,
        "follows": bool(row.follows),
        "desired_inference_units": row.desired_inference_units,
        "current_inference_units": row.desired_inference_units,
        "pool_rate": row.pool_rate,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


class EndpointService:
    def __init__(
        self, database: Database, models: ModelCache, queue: JobQueue, refresh_seconds: float = 0.5
    ) -> None:
        self.database = database
        self.models = models
        self.queue = queue
        self.refresh_seconds = refresh_seconds
        self._cache: dict[str, tuple[float, int, Serving]] = {}  # name -> (checked at, read, serving)
        self._reads = 0  # reads of where endpoints point, numbered in the order they began
        self._forgotten: dict[str, int] = {}  # name -> the last read begun before it was forgotten
        self._lock = threading.Lock()
        self._follower: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failed: dict[str, str] = {}  # endpoints found FAILED at their last look: message
        self._load_failures: dict[str, int] = {}

    # ---- management ------------------------------------------------------------------
    # An endpoint is CREATING until a deploy job has loaded and verified its model (then
    # IN_SERVICE, or FAILED with a message); re-pointing makes it UPDATING while it goes on
    # serving its current version, and the switch happens only once the new model loaded
    # (a model that cannot load leaves the old one serving, with a message saying why).
    # An endpoint whose serving model file is later found damaged or missing (a process
    # starting up, say) becomes FAILED with a message; updating it deploys again.

    def create(
        self,
        name: str,
        classifier: str,
        version: str | None = None,
        inference_units: int = 1,
        follow: bool | None = None,
    ) -> dict[str, Any]:
        """A new endpoint on ``version``, pinned there; with no version (or ``follow``) it
        follows its classifier's champion (no champion yet: ``version``, else the newest
        TRAINED version, becomes the champion) and moves whenever a new one is promoted."""
        check_name("endpoint", name)
        _check_units(inference_units)
        follows = version is None if follow is None else follow
        with self.database.transaction() as session:
            endpoints = EndpointRepository(session)
            if endpoints.find(name) is not None:
                raise AlreadyExists(f"endpoint {name!r} exists already")
            classifier_row = ClassifierRepository(session).get(classifier)
            if follows:
                version_row = self._champion(session, classifier_row, version)
            else:
                version_row = resolve_version(session, classifier_row, version)
            row = endpoints.add(
                name=name,
                classifier_id=classifier_row.id,
                version_id=version_row.id,
                desired_version_id=version_row.id,
                desired_inference_units=inference_units,
                status=CREATING,
                follows=follows,
            )
            job_id = self._deploy(session, row, version_row)
            return endpoint_summary(row, classifier_row, version_row) | {"job_id": job_id}

    @staticmethod
    def _champion(
        session: Any, classifier: ClassifierRow, version: str | None, endpoint: str | None = None
    ) -> ModelVersionRow:
        """The champion a following endpoint serves; with none yet, ``version`` (else the
        newest TRAINED version) becomes it. A ``version`` other than the champion is refused
        (naming ``endpoint`` when it exists): a following endpoint serves the champion."""
        loop = ensure_loop(session, classifier)
        if loop.active_version_id is None:
            chosen = resolve_version(session, classifier, version)
            promote_in(session, classifier, loop, chosen, "first following endpoint")
            return chosen
        champion = ModelVersionRepository(session).get(loop.active_version_id)
        if version is not None and version != champion.name:
            who = f"endpoint {endpoint!r}" if endpoint else "an endpoint that"
            raise InvalidRequest(
                f"{who} follows classifier {classifier.name!r} and serves its champion, "
                f"version {champion.name}: give no version, or pin the endpoint to version {version} "
                "(promote a version to make it the champion)"
            )
        return champion

    def update(
        self,
        name: str,
        version: str | None = None,
        inference_units: int | None = None,
        follow: bool | None = None,
    ) -> dict[str, Any]:
        """Move ``name`` to ``version`` (default: the newest trained; for an endpoint that
        follows: its classifier's champion) and/or record new desired inference units
        (recorded and reported, not provisioned: see :func:`endpoint_summary`). ``follow``
        True makes it follow the champion; False pins it (to ``version``, else where it is)."""
        if inference_units is not None:
            _check_units(inference_units)
        with self.database.transaction() as session:
            row = EndpointRepository(session).get(name)
            classifier_row = session.get_one(ClassifierRow, row.classifier_id)
            follows = row.follows if follow is None else follow
            if follows:
                version_row = self._champion(session, classifier_row, version, endpoint=name)
            elif follow is False and version is None:
                version_row = ModelVersionRepository(session).get(row.desired_version_id or row.version_id)
            else:
                version_row = resolve_version(session, classifier_row, version)
            row.follows = follows
            job_id = None
            if row.status in (CREATING, UPDATING) and version_row.id != row.desired_version_id:
                raise ResourceInUse(f"endpoint {name!r} is {row.status}: wait until it is IN_SERVICE")
            if row.status == FAILED or version_row.id != row.version_id:
                row.status = CREATING if row.status == FAILED else UPDATING
                row.desired_version_id = version_row.id
                row.message = None
                job_id = self._deploy(session, row, version_row)
            if inference_units is not None:
                row.desired_inference_units = inference_units
            row.updated_at = utcnow()
            session.flush()
            summary = self._summary(session, row)
        return summary | {"job_id": job_id}

    def _deploy(self, session: Any, row: EndpointRow, version: ModelVersionRow) -> str:
        return self.queue.enqueue(
            session,
            DEPLOY_JOB,
            {"endpoint": row.name, "version_id": version.id},
            classifier_id=row.classifier_id,
            version_id=version.id,
        )

    def deploy(self, name: str, version_id: int) -> dict[str, Any]:
        """Load and verify ``version_id``'s model, then make it what ``name`` serves (the
        deploy job). Does nothing if the endpoint is gone or now wants another version."""
        with self.database.reading() as session:
            row = EndpointRepository(session).find(name)
            if row is None or row.desired_version_id != version_id:
                return {"endpoint": name, "status": "SUPERSEDED"}
            version = ModelVersionRepository(session).get(version_id)
        self.models.get(version, verify=True)  # reads the stored file, checks its hash, loads it
        with self.database.transaction() as session:
            row = EndpointRepository(session).find(name)
            if row is None or row.desired_version_id != version_id:
                return {"endpoint": name, "status": "SUPERSEDED"}
            previous_id = row.version_id
            row.version_id = version_id
            row.desired_version_id = None
            row.status = IN_SERVICE
            row.message = None
            row.updated_at = utcnow()
            record_deployment(session, name, version_id, previous_id)  # notifications
        self._forget(name)
        return {"endpoint": name, "version": version.name, "status": IN_SERVICE}

    def deploy_failed(self, name: str, version_id: int, reason: str) -> None:
        """A deployment that will not finish: a new endpoint is FAILED; an updated one goes on
        serving its current version. Either way the message says why."""
        with self.database.transaction() as session:
            row = EndpointRepository(session).find(name)
            if row is None or row.desired_version_id != version_id:
                return
            version = ModelVersionRepository(session).get(version_id)
            if row.status in (CREATING, FAILED):
                row.status, row.message = FAILED, f"deploying version {version.name} failed: {reason}"
            else:
                row.status, row.message = IN_SERVICE, f"updating to version {version.name} failed: {reason}"
            row.desired_version_id = None
            row.updated_at = utcnow()
            record_deployment(session, name, version_id, row.version_id, failed=row.message)

    def delete(self, name: str) -> None:
        with self.database.transaction() as session:
            session.delete(EndpointRepository(session).get(name))
        self._forget(name)
        self._note_failed(name, None)

    def list(self) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            return [self._summary(session, row) for row in EndpointRepository(session).list()]

    def show(self, name: str) -> dict[str, Any]:
        with self.database.reading() as session:
            return self._summary(session, EndpointRepository(session).get(name))

    # ---- review routing ------------------------------------------------------------------
    def routing(self, name: str) -> dict[str, Any]:
        """The endpoint's routing policy as stored (every rule off when none is set)."""
        with self.database.reading() as session:
            row = EndpointRepository(session).get(name)
            stored = row.routing
        policy = RoutingPolicy.from_dict(stored) if stored else RoutingPolicy()
        return _routing_summary(name, policy)

    def routes_any(self) -> bool:
        """Whether some endpoint has a routing policy stored."""
        with self.database.reading() as session:
            return any(row.routing for row in EndpointRepository(session).list())

    def set_routing(self, name: str, policy: RoutingPolicy | dict[str, Any] | None) -> dict[str, Any]:
        """Store ``name``'s routing policy (a dict is checked by ``RoutingPolicy.from_dict``:
        errors name the field; None turns routing off). Every serving process follows it
        within ``refresh_seconds``; this one at once."""
        if not isinstance(policy, RoutingPolicy):
            policy = RoutingPolicy.from_dict(policy) if policy is not None else RoutingPolicy()
        with self.database.transaction() as session:
            row = EndpointRepository(session).get(name)
            row.routing = policy.to_dict() if policy != RoutingPolicy() else None
            row.updated_at = utcnow()
        self._forget(name)
        return _routing_summary(name, policy)

    @staticmethod
    def _summary(session: Any, row: EndpointRow) -> dict[str, Any]:
        classifier = session.get_one(ClassifierRow, row.classifier_id)
        versions = ModelVersionRepository(session)
        desired = versions.get(row.desired_version_id) if row.desired_version_id else None
        return endpoint_summary(row, classifier, versions.get(row.version_id), desired)

    # ---- serving ---------------------------------------------------------------------
    def cached(self, name: str) -> Serving | None:
        """What ``name`` serves, if this process knows it and checked it within
        ``refresh_seconds``; ``None`` means: ask :meth:`serving` (off the event loop)."""
        entry = self._cache.get(name)
        if entry is not None and time.monotonic() - entry[0] < self.refresh_seconds:
            return entry[2]
        return None

    def serving(self, name: str, refresh: bool = False) -> Serving:
        """The model ``name`` serves now (from memory if checked within ``refresh_seconds``).

        Reads may overlap (the follower thread, requests finding an entry too old); the answer
        of a read never replaces that of a read begun later, so a process that served a new
        version never serves the one before it again.
        """
        if not refresh and (known := self.cached(name)) is not None:
            return known
        check_name("endpoint", name)  # before a database sees it (PostgreSQL refuses NUL, for one)
        with self._lock:
            cached = self._cache.get(name)
            self._reads += 1
            read = self._reads
        with self.database.reading() as session:
            row = EndpointRepository(session).find(name)
            if row is None:
                self._forget(name)
                self._note_failed(name, None)
                raise NotFound(f"no endpoint named {name!r}")
            status, message, routing = row.status, row.message, _policy(name, row.routing)
            version = ModelVersionRepository(session).get(row.version_id)
            classifier = session.get_one(ClassifierRow, row.classifier_id)
        if status in (CREATING, FAILED):
            self._forget(name)
            self._note_failed(name, (message or status) if status == FAILED else None)
            reason = f": {message}" if message else " (its model is being loaded)"
            raise ResourceUnavailable(f"endpoint {name!r} is {status}{reason}")
        if version.status != VersionStatus.TRAINED.value:
            self._forget(name)
            raise ResourceUnavailable(
                f"endpoint {name!r} points at version {version.name}, which is {version.status}"
            )
        current = cached[2] if cached is not None and cached[2].version_id == version.id else None
        serving = current
        if serving is None:
            try:
                model = self.models.get(version)
            except ArtifactCorrupt as exc:
                message = self._load_failed(name, version, exc)
                raise ResourceUnavailable(f"endpoint {name!r} is {FAILED}: {message}") from exc
            serving = Serving(name, classifier.name, version.name, version.id, model, routing, classifier.id)
        elif serving.routing != routing:
            serving = dataclasses.replace(serving, routing=routing)
        with self._lock:
            newest = self._cache.get(name)
            if newest is not None and newest[1] > read:  # a later read answered first
                return newest[2]
            if read > self._forgotten.get(name, 0):
                self._cache[name] = (time.monotonic(), read, serving)
        self._note_failed(name, None)
        return serving

    def _load_failed(self, name: str, version: ModelVersionRow, exc: ArtifactCorrupt) -> str:
        """The endpoint's model file is damaged or gone: mark the endpoint FAILED for every
        process (until it is updated, e.g. to the same version once the file is restored) with
        a message that names no path (the log has it, from the model cache)."""
        reason = "file missing" if isinstance(exc, ArtifactMissing) else "file damaged"
        message = f"its model version {version.name} failed to load ({reason}); see the server log"
        log.error("endpoint %s is FAILED: model version %s failed to load: %s", name, version.name, exc)
        with self.database.transaction() as session:
            row = EndpointRepository(session).find(name)
            if row is not None and row.version_id == version.id and row.status != FAILED:
                row.status, row.message = FAILED, message
                row.updated_at = utcnow()
        with self._lock:
            self._load_failures[name] = self._load_failures.get(name, 0) + 1
        self._note_failed(name, message)
        return message

    def _note_failed(self, name: str, message: str | None) -> None:
        with self._lock:
            if message is None:
                self._failed.pop(name, None)
            else:
                self._failed[name] = message

    def failed(self) -> dict[str, str]:
        """The endpoints this process found FAILED when it last looked (name: message); the
        follower keeps looking, so one that serves again leaves the list."""
        with self._lock:
            return dict(self._failed)

    def load_failures(self) -> dict[str, int]:
        """How many times this process failed to load an endpoint's model, per endpoint."""
        with self._lock:
            return dict(self._load_failures)

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
            with self._lock:
                names = [*self._cache, *(name for name in self._failed if name not in self._cache)]
            for name in names:
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
            self._forgotten[name] = self._reads  # what reads begun before now found is out of date


def _policy(name: str, stored: dict[str, Any] | None) -> RoutingPolicy | None:
    """The active policy of what ``endpoints.routing`` holds; None when off (or unreadable:
    a row written by hand, say, which is logged rather than failing every classify)."""
    if not stored:
        return None
    try:
        policy = RoutingPolicy.from_dict(stored)
    except TagloopError as exc:
        log.error("endpoint %s: its stored routing policy is not valid (%s); nothing is routed", name, exc)
        return None
    return policy if policy.active else None


def _routing_summary(name: str, policy: RoutingPolicy) -> dict[str, Any]:
    return {"endpoint": name, "active": policy.active} | policy.to_dict()


class DeployJob(JobKindBase):
    """The ``deploy`` job kind: loads an endpoint's new model and switches the endpoint to it."""

    kind = DEPLOY_JOB

    def __init__(self, endpoints: EndpointService) -> None:
        self.endpoints = endpoints

    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        name, version_id = str(payload["endpoint"]), int(payload["version_id"])
        try:
            return self.endpoints.deploy(name, version_id)
        except TagloopError as exc:  # will not get better by retrying: the artifact is bad
            self.endpoints.deploy_failed(name, version_id, exc.message)
            raise

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        self.endpoints.deploy_failed(str(payload["endpoint"]), int(payload["version_id"]), message)

    def children_finished(
        self, payload: dict[str, Any], results: list[dict[str, Any] | None]
    ) -> dict[str, Any]:
        raise NotImplementedError("deploy jobs have no children")
