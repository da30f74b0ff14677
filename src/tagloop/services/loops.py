"""A classifier's learning loop: its champion, its settings, promotion and rollback.

The champion (``LoopRow.active_version_id``) is what every *following* endpoint of the
classifier serves. Promoting a version is ONE transaction: the loop's champion, the
``version_id`` of every following endpoint and a ``version.promoted`` event change together
or not at all; each serving process picks the endpoints' new version up through its follower
within a second (``EndpointService.follow``), a request in flight finishing on the old model.
Pinned endpoints (``follows=False``) stay where they are, as a Comprehend endpoint on a model
ARN does. Rollback is a promotion of the champion before the current one, found in the
history of ``version.promoted`` events.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tagloop.domain.loop import LoopSettings
from tagloop.domain.records import VersionStatus
from tagloop.domain.strategies import strategy
from tagloop.errors import InvalidRequest, NotFound, ResourceUnavailable
from tagloop.services.catalog import version_summary
from tagloop.services.model_cache import ModelCache
from tagloop.services.notify_events import record_deployment
from tagloop.storage.database import Database
from tagloop.storage.events import EventRepository
from tagloop.storage.loops import IterationRepository, LoopRepository
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository
from tagloop.storage.tables import ClassifierRow, EndpointRow, EventRow, LoopRow, ModelVersionRow, utcnow

PROMOTED_EVENT = "version.promoted"
IN_SERVICE = "IN_SERVICE"  # endpoints' status (services/endpoints.py); the promoted model is verified first


def ensure_loop(session: Session, classifier: ClassifierRow) -> LoopRow:
    """The classifier's loop, made on first use: its champion is the newest version one of
    the classifier's endpoints serves, else None (no champion yet)."""
    loops = LoopRepository(session)
    row = loops.find(classifier.id)
    if row is not None:
        return row
    served = session.scalars(
        select(ModelVersionRow.id)
        .join(EndpointRow, EndpointRow.version_id == ModelVersionRow.id)
        .where(EndpointRow.classifier_id == classifier.id)
        .order_by(ModelVersionRow.number.desc())
        .limit(1)
    ).first()
    return loops.add(classifier.id, served, LoopSettings().to_dict())


def loop_settings(row: LoopRow) -> LoopSettings:
    return LoopSettings.from_dict(dict(row.settings or {}))


def following_endpoints(session: Session, classifier_id: int) -> list[EndpointRow]:
    return list(
        session.scalars(
            select(EndpointRow)
            .where(EndpointRow.classifier_id == classifier_id, EndpointRow.follows.is_(True))
            .order_by(EndpointRow.name)
        )
    )


def promote_in(
    session: Session,
    classifier: ClassifierRow,
    loop: LoopRow,
    version: ModelVersionRow,
    reason: str,
) -> dict[str, Any]:
    """Make ``version`` the champion inside the caller's transaction: the loop, every
    following endpoint and the ``version.promoted`` event. The caller checked that the
    version is TRAINED and its model loads."""
    versions = ModelVersionRepository(session)
    previous = versions.get(loop.active_version_id) if loop.active_version_id is not None else None
    LoopRepository(session).set_champion(loop.id, version.id)
    moved = []
    deployed: list[tuple[str, int]] = []  # (endpoint, the version it served before)
    now = utcnow()
    for endpoint in following_endpoints(session, classifier.id):
        if endpoint.version_id != version.id or endpoint.desired_version_id is not None:
            moved.append(endpoint.name)
        if endpoint.version_id != version.id:
            deployed.append((endpoint.name, endpoint.version_id))
        # a deploy job in flight finds desired_version_id changed and leaves the endpoint alone
        endpoint.version_id = version.id
        endpoint.desired_version_id = None
        endpoint.status = IN_SERVICE
        endpoint.message = None
        endpoint.updated_at = now
    session.flush()
    session.refresh(loop)
    payload = {
        "classifier": classifier.name,
        "from": previous.name if previous is not None else None,
        "to": version.name,
        "from_id": previous.id if previous is not None else None,
        "to_id": version.id,
        "reason": reason,
        "endpoints": moved,
    }
    EventRepository(session).add(PROMOTED_EVENT, payload, classifier_id=classifier.id)
    for name, previous_id in deployed:  # each endpoint now serving another version, as a deploy records
        record_deployment(session, name, version.id, previous_id)
    return payload


def loop_summary(session: Session, classifier: ClassifierRow, row: LoopRow) -> dict[str, Any]:
    versions = ModelVersionRepository(session)
    champion = versions.get(row.active_version_id) if row.active_version_id is not None else None
    loops = LoopRepository(session)
    latest = IterationRepository(session).latest(row.id)
    return {
        "classifier": classifier.name,
        "name": row.name,
        "status": row.status,
        "champion": champion.name if champion is not None else None,
        "settings": loop_settings(row).to_dict(),
        "following_endpoints": [e.name for e in following_endpoints(session, classifier.id)],
        "verified_documents": loops.verified_count(classifier.id),
        "verified_mark": row.verified_mark,
        "next_run_at": row.next_run_at.isoformat() if row.next_run_at else None,
        "latest_iteration": latest.name if latest is not None else None,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


class LoopService:
    def __init__(self, database: Database, models: ModelCache) -> None:
        self.database = database
        self.models = models

    def settings(self, classifier: str) -> dict[str, Any]:
        """The loop of ``classifier`` (made on first use) with its champion and settings."""
        with self.database.transaction() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            return loop_summary(session, classifier_row, ensure_loop(session, classifier_row))

    def configure(self, classifier: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change loop settings (``LoopSettings`` fields; a None clears a nullable one).
        Raises InvalidRequest naming the field; nothing changes then."""
        if not isinstance(changes, dict):
            raise InvalidRequest("loop settings: expected an object")
        with self.database.transaction() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            row = ensure_loop(session, classifier_row)
            before = loop_settings(row)
            after = before.updated(changes)
            strategy(after.refill_strategy)  # an unknown name: InvalidRequest listing the known ones
            row.settings = after.to_dict()
            if after.every_seconds != before.every_seconds:
                row.next_run_at = (
                    utcnow() + timedelta(seconds=after.every_seconds) if after.every_seconds else None
                )
            if after.after_verified is not None and before.after_verified is None:
                row.verified_mark = LoopRepository(session).verified_count(classifier_row.id)
            row.updated_at = utcnow()
            session.flush()
            return loop_summary(session, classifier_row, row)

    def ensure(self, session: Session, classifier_row: ClassifierRow) -> LoopRow:
        return ensure_loop(session, classifier_row)

    def champion(self, classifier: str) -> dict[str, Any] | None:
        """The champion's version summary, None when the classifier has none yet."""
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            row = LoopRepository(session).find(classifier_row.id)
            if row is None:  # not made yet: what it would be made with
                with self.database.transaction() as writing:
                    row = ensure_loop(writing, ClassifierRepository(writing).get(classifier))
            if row.active_version_id is None:
                return None
            return version_summary(classifier_row, ModelVersionRepository(session).get(row.active_version_id))

    def promote(self, classifier: str, version: str, reason: str = "manual") -> dict[str, Any]:
        """Make ``version`` the champion and re-point every following endpoint, atomically
        (see the module docstring). Refuses a version that is not TRAINED or whose model does
        not load; promoting the champion again changes nothing and records nothing."""
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            row = ModelVersionRepository(session).find(classifier_row.id, version)
            if row is None:
                raise NotFound(f"classifier {classifier!r} has no version {version!r}")
            if row.status != VersionStatus.TRAINED.value:
                raise ResourceUnavailable(
                    f"version {version} of {classifier!r} is {row.status}: "
                    "only a TRAINED version can be promoted"
                )
        self.models.get(row, verify=True)  # a model that does not load is never promoted
        with self.database.transaction() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            loop = ensure_loop(session, classifier_row)
            loop = LoopRepository(session).find(classifier_row.id, lock=True) or loop
            current = ModelVersionRepository(session).find(classifier_row.id, version)
            if current is None or current.status != VersionStatus.TRAINED.value:  # deleted meanwhile
                raise NotFound(f"classifier {classifier!r} has no trained version {version!r}")
            if loop.active_version_id == current.id:
                moved = self._catch_up(session, classifier_row, current)
                return {
                    "classifier": classifier,
                    "champion": current.name,
                    "previous": current.name,
                    "reason": reason,
                    "endpoints": moved,
                    "changed": False,
                }
            payload = promote_in(session, classifier_row, loop, current, reason)
        return {
            "classifier": classifier,
            "champion": payload["to"],
            "previous": payload["from"],
            "reason": reason,
            "endpoints": payload["endpoints"],
            "changed": True,
        }

    @staticmethod
    def _catch_up(session: Session, classifier: ClassifierRow, version: ModelVersionRow) -> list[str]:
        """Following endpoints not on the champion (made to follow while another version
        served) move to it."""
        moved = []
        for endpoint in following_endpoints(session, classifier.id):
            if endpoint.version_id != version.id:
                endpoint.version_id = version.id
                endpoint.desired_version_id = None
                endpoint.status = IN_SERVICE
                endpoint.updated_at = utcnow()
                moved.append(endpoint.name)
        return moved

    def events(
        self, kind: str | None = None, after: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Events oldest first after the id ``after`` (for a reader that follows them)."""
        with self.database.reading() as session:
            rows = EventRepository(session).list(kind=kind, after_id=after, limit=limit)
            names = {id_: name for id_, name in session.execute(select(ClassifierRow.id, ClassifierRow.name))}
            return [
                {
                    "id": row.id,
                    "kind": row.kind,
                    "classifier": names.get(row.classifier_id) if row.classifier_id is not None else None,
                    "endpoint": row.endpoint,
                    "payload": row.payload,
                    "created_at": row.created_at.isoformat(),
                }
                for row in rows
            ]

    def history(self, classifier: str, limit: int = 100) -> list[dict[str, Any]]:
        """The classifier's promotions, newest first."""
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            rows = session.scalars(
                select(EventRow)
                .where(EventRow.kind == PROMOTED_EVENT, EventRow.classifier_id == classifier_row.id)
                .order_by(EventRow.id.desc())
                .limit(limit)
            ).all()
            return [dict(row.payload) | {"at": row.created_at.isoformat()} for row in rows]

    def rollback(self, classifier: str, to: str | None = None) -> dict[str, Any]:
        """Promote ``to``, or the champion before the current one (the ``from`` of the
        promotion that made the current champion)."""
        if to is not None:
            return self.promote(classifier, to, reason="rollback")
        with self.database.reading() as session:
            classifier_row = ClassifierRepository(session).get(classifier)
            loop = LoopRepository(session).find(classifier_row.id)
            if loop is None or loop.active_version_id is None:
                raise InvalidRequest(f"classifier {classifier!r} has no champion to roll back from")
            events = session.scalars(
                select(EventRow)
                .where(EventRow.kind == PROMOTED_EVENT, EventRow.classifier_id == classifier_row.id)
                .order_by(EventRow.id.desc())
            )
            previous_id = None
            for event in events:
                if event.payload.get("to_id") == loop.active_version_id and event.payload.get("from_id"):
                    previous_id = int(event.payload["from_id"])
                    break
            if previous_id is None:
                raise InvalidRequest(
                    f"classifier {classifier!r} has no champion before the current one: "
                    "name the version to roll back to (--to)"
                )
            previous = session.get(ModelVersionRow, previous_id)
            if previous is None:
                raise NotFound(
                    f"the champion before the current one of {classifier!r} was deleted: "
                    "name the version to roll back to (--to)"
                )
            name = previous.name
        return self.promote(classifier, name, reason="rollback")
