"""Notifications: channels (webhook, e-mail, apprise) and the delivery log that sends them
the events the services record (``storage/events.py``: the single source of what is told).

The loop ticker calls :meth:`ChannelService.tick` in ``serve`` and ``worker``:

1. **collect**: for each enabled channel, the events after its cursor that it hears (kinds,
   classifier) become ``pending`` deliveries, with the message rendered once
   (``domain/notifications.py``). Event ids come from a sequence, and on PostgreSQL a
   transaction may commit a smaller id after a larger one: so the cursor only moves past
   events older than ``SETTLE_SECONDS``, newer ones are read again next tick, and the unique
   key (channel, event) keeps each event's delivery single.
2. **send**: each due delivery is claimed (a conditional UPDATE with a lease: two processes
   never send it at once), sent outside any transaction, then recorded ``delivered``, or
   ``pending`` again after an exponential backoff (TAGLOOP_NOTIFY_BACKOFF_SECONDS, doubling),
   or ``failed`` once TAGLOOP_NOTIFY_ATTEMPTS are used. ``tagloop notify retry`` re-queues the
   failed ones of a channel.
3. **prune** (hourly): delivered and failed deliveries are deleted TAGLOOP_NOTIFY_KEEP_DAYS
   after their last attempt; pending ones stay until they are sent or fail.

A process killed while sending leaves the delivery ``sending``; it is claimed again when its
lease ends, so a delivery may arrive twice then (at least once): receivers deduplicate by the
``X-Tagloop-Delivery`` header.
"""

from __future__ import annotations

import builtins
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from tagloop.domain.names import check_name
from tagloop.domain.notifications import (
    CHANNEL_KINDS,
    TEST_KIND,
    Message,
    TargetRefused,
    allowed_by,
    backoff_seconds,
    check_addresses,
    check_kinds,
    check_webhook_url,
    hears,
    render,
    shown_target,
)
from tagloop.errors import AlreadyExists, InvalidRequest, LocationNotAllowed
from tagloop.services.notify_senders import (
    AppriseSender,
    EmailSender,
    Outcome,
    WebhookSender,
    check_apprise_url,
)
from tagloop.services.secrets import SecretBox
from tagloop.settings import Settings
from tagloop.storage.database import Database
from tagloop.storage.notify import (
    DELIVERED,
    FAILED,
    PENDING,
    SENDING,
    STATUSES,
    ChannelRepository,
    DeliveryRepository,
)
from tagloop.storage.repositories import ClassifierRepository
from tagloop.storage.tables import ChannelRow, ClassifierRow, DeliveryRow, EventRow, utcnow

log = logging.getLogger(__name__)

SETTING = "TAGLOOP_NOTIFY_ALLOWED_TARGETS"
SETTLE_SECONDS = 60.0  # an event's transaction commits within this after its insert
EVENTS_PER_TICK = 500  # per channel
SENDS_PER_TICK = 200
LEASE_SECONDS = 120.0  # a claimed delivery's attempt; longer than any sender's timeouts
COUNTS_REFRESH_SECONDS = 15.0
PRUNE_SECONDS = 3600.0
"""How often a process deletes the delivery log's old finished deliveries."""
PRUNE_BATCH = 5_000
"""Deliveries deleted per transaction."""
SECRET_BYTES = 32


class ChannelService:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.settings = settings
        self.box = box
        self.clock = clock
        self.webhooks = WebhookSender(settings.notify_timeout_seconds)
        self.email = EmailSender(settings)
        self.apprise = AppriseSender()
        self._counts: dict[str, int] = {}
        self._counts_at: float | None = None
        self._counts_lock = threading.Lock()
        self._pruned_at: float | None = None
        self._monotonic: Callable[[], float] = time.monotonic

    def close(self) -> None:
        self.webhooks.close()

    # ---- channels ----------------------------------------------------------------------
    def add(
        self,
        name: str,
        kind: str,
        target: str,
        events: list[str] | None = None,
        classifier: str | None = None,
        secret: str | None = None,
        from_network: bool = False,
    ) -> dict[str, Any]:
        """A new channel. A webhook gets a signing secret (``secret``, else a random one, shown
        once in the answer). Over the network (``from_network``) a webhook URL or e-mail
        domain must be in TAGLOOP_NOTIFY_ALLOWED_TARGETS and apprise channels are refused."""
        check_name("channel", name)
        if kind not in CHANNEL_KINDS:
            raise InvalidRequest(f"channel kind must be one of {', '.join(CHANNEL_KINDS)}")
        try:
            kinds = check_kinds(events or [])
            stored_target, sealed, shown_secret = self._target(kind, target, secret)
        except TargetRefused as exc:
            raise InvalidRequest(str(exc)) from exc
        if from_network:
            self._check_allowed(kind, target)
        with self.database.transaction() as session:
            channels = ChannelRepository(session)
            if channels.find(name) is not None:
                raise AlreadyExists(f"notification channel {name!r} exists already")
            classifier_id = ClassifierRepository(session).get(classifier).id if classifier else None
            row = channels.add(
                name=name,
                kind=kind,
                target=stored_target,
                secret=sealed,
                events=kinds,
                classifier_id=classifier_id,
                enabled=True,
                created_at=utcnow(),
            )
            summary = self._summary(row, classifier)
        if shown_secret is not None:
            summary["secret"] = shown_secret
        return summary

    def _target(self, kind: str, target: str, secret: str | None) -> tuple[str, str | None, str | None]:
        """What is stored for a target: (target, sealed secret, secret to show once)."""
        if kind == "webhook":
            url = check_webhook_url(target.strip())
            if secret is not None and not 16 <= len(secret) <= 256:
                raise TargetRefused("a webhook secret must have 16 to 256 characters")
            chosen = secret or secrets.token_urlsafe(SECRET_BYTES)
            return url, self.box.seal(chosen), chosen
        if kind == "email":
            if secret is not None:
                raise TargetRefused("an e-mail channel has no secret")
            return ", ".join(check_addresses(target)), None, None
        if secret is not None:
            raise TargetRefused("an apprise channel's credentials are in its URL: give no secret")
        check_apprise_url(target.strip())
        return shown_target("apprise", target.strip()), self.box.seal(target.strip()), None  # the URL sealed

    def _check_allowed(self, kind: str, target: str) -> None:
        allowed = self.settings.notify_allowed_targets
        if kind == "apprise":
            raise LocationNotAllowed(
                "apprise channels reach any host their URL names: "
                "add them with the CLI (tagloop notify add apprise)"
            )
        if not allowed_by(kind, target.strip(), allowed):
            what = "webhook URL" if kind == "webhook" else "e-mail address domain"
            raise LocationNotAllowed(
                f"this {what} is not in the allowed notification targets (setting {SETTING}); "
                "the CLI adds any target"
            )

    def list(self) -> list[dict[str, Any]]:
        with self.database.reading() as session:
            names = _classifier_names(session)
            return [
                self._summary(row, names.get(row.classifier_id or 0)) | self._channel_counts(session, row.id)
                for row in ChannelRepository(session).list()
            ]

    def show(self, name: str) -> dict[str, Any]:
        with self.database.reading() as session:
            row = ChannelRepository(session).get(name)
            classifier = _classifier_names(session).get(row.classifier_id or 0)
            return self._summary(row, classifier) | self._channel_counts(session, row.id)

    def remove(self, name: str) -> dict[str, Any]:
        with self.database.transaction() as session:
            channels = ChannelRepository(session)
            row = channels.get(name)
            summary = self._summary(row, _classifier_names(session).get(row.classifier_id or 0))
            channels.remove(row)
        return summary | {"removed": True}

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Pause or resume a channel; events while paused are skipped (the cursor moves on)."""
        with self.database.transaction() as session:
            row = ChannelRepository(session).get(name)
            if enabled and not row.enabled:
                newest = session.scalar(select(EventRow.id).order_by(EventRow.id.desc()).limit(1))
                row.after_event_id = max(row.after_event_id, int(newest or 0))
            row.enabled = enabled
            session.flush()
            return self._summary(row, _classifier_names(session).get(row.classifier_id or 0))

    @staticmethod
    def _summary(row: ChannelRow, classifier: str | None) -> dict[str, Any]:
        return {
            "name": row.name,
            "kind": row.kind,
            "target": shown_target(row.kind, row.target) if row.kind == "webhook" else row.target,
            "events": list(row.events or []) or ["*"],
            "classifier": classifier,
            "enabled": row.enabled,
            "created_at": row.created_at.isoformat() if row.created_at else None,
        }

    @staticmethod
    def _channel_counts(session: Any, channel_id: int) -> dict[str, Any]:
        last = DeliveryRepository(session).list(channel_id=channel_id, limit=1)
        return {
            "last_delivery": _delivery_summary(last[0], None) if last else None,
        }

    # ---- deliveries --------------------------------------------------------------------
    def deliveries(
        self,
        channel: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The delivery log, newest first (``before``: the smallest id of the page before)."""
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}")
        with self.database.reading() as session:
            channel_id = ChannelRepository(session).get(channel).id if channel else None
            names = {row.id: row.name for row in ChannelRepository(session).list()}
            rows = DeliveryRepository(session).list(channel_id, status, limit, before)
            return [_delivery_summary(row, names.get(row.channel_id)) for row in rows]

    def retry(self, channel: str) -> dict[str, Any]:
        """Failed deliveries of ``channel`` are tried again at the next tick (attempts anew)."""
        with self.database.transaction() as session:
            row = ChannelRepository(session).get(channel)
            count = DeliveryRepository(session).retry_failed(row.id, self.clock())
        return {"channel": channel, "requeued": count}

    def test(self, name: str) -> dict[str, Any]:
        """Send a test message to ``name`` now, one attempt; the delivery as recorded (its
        status says whether it arrived, its error why not)."""
        now = self.clock()
        with self.database.transaction() as session:
            row = ChannelRepository(session).get(name)
            message = render(TEST_KIND, {"channel": name})
            delivery = DeliveryRepository(session).add(
                channel_id=row.id,
                event_id=None,
                kind=TEST_KIND,
                payload=_stored(message, {"channel": name}, None, None, now),
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            delivery_id = delivery.id
        self._attempt(delivery_id, final=True)
        with self.database.reading() as session:
            return _delivery_summary(session.get_one(DeliveryRow, delivery_id), name)

    # ---- the ticker part ---------------------------------------------------------------
    def tick(self) -> None:
        """New events to deliveries, then due deliveries sent, and at most once per
        ``PRUNE_SECONDS`` old finished ones deleted (safe in several processes)."""
        self.collect()
        self.send_due()
        now = self._monotonic()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = now
            self.prune()
        self._refresh_counts()  # /metrics reads this snapshot

    def collect(self) -> int:
        """Turn the events after each enabled channel's cursor into its pending deliveries."""
        added = 0
        with self.database.reading() as session:
            channel_ids = [row.id for row in ChannelRepository(session).list(enabled_only=True)]
        for channel_id in channel_ids:
            added += self._collect_channel(channel_id)
        return added

    def _collect_channel(self, channel_id: int) -> int:
        now = self.clock()
        settled_before = now - timedelta(seconds=SETTLE_SECONDS)
        with self.database.transaction() as session:
            channels = ChannelRepository(session)
            channel = channels.lock(channel_id)
            if channel is None or not channel.enabled:
                return 0
            events = channels.events_after(channel.after_event_id, EVENTS_PER_TICK)
            if not events:
                return 0
            names = _classifier_names(session)
            rows = []
            for event in events:
                if not hears(list(channel.events or []), event.kind):
                    continue
                if channel.classifier_id is not None and event.classifier_id != channel.classifier_id:
                    continue
                message = render(
                    event.kind, event.payload or {}, self.settings.aws_region, self.settings.aws_account_id
                )
                classifier = names.get(event.classifier_id or 0) or (event.payload or {}).get("classifier")
                rows.append(
                    {
                        "event_id": event.id,
                        "kind": event.kind,
                        "payload": _stored(
                            message, event.payload or {}, classifier, event.endpoint, event.created_at
                        )
                        | {"event_id": event.id},
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
            added = DeliveryRepository(session).add_for_events(channel_id, rows)
            # the cursor passes the settled prefix only: a newer event may still have a smaller
            # id committing after it (its delivery, if any, is skipped by the unique key)
            cursor = channel.after_event_id
            for event in events:
                if _aware(event.created_at) > settled_before:
                    break
                cursor = event.id
            if len(events) == EVENTS_PER_TICK and cursor == channel.after_event_id:
                cursor = events[-1].id  # a full page of unsettled events: never stall
            channel.after_event_id = cursor
        return added

    def prune(self) -> int:
        """Delete the delivered and failed deliveries whose last attempt is older than
        TAGLOOP_NOTIFY_KEEP_DAYS (none when it is 0), ``PRUNE_BATCH`` per transaction; pending
        and sending ones are never deleted. Returns how many. An event's delivery is never
        added again: the channel's cursor passed the event long before."""
        keep_days = self.settings.notify_keep_days
        if keep_days <= 0:
            return 0
        before = self.clock() - timedelta(days=keep_days)
        deleted = 0
        while True:
            with self.database.transaction() as session:
                count = DeliveryRepository(session).delete_finished_before(before, PRUNE_BATCH)
            deleted += count
            if count < PRUNE_BATCH:
                break
        if deleted:
            log.info("deleted %d notification deliveries older than %d days", deleted, keep_days)
        return deleted

    def send_due(self, limit: int = SENDS_PER_TICK) -> int:
        """Send the due deliveries (each claimed first); how many attempts were made."""
        with self.database.reading() as session:
            due = DeliveryRepository(session).due_ids(self.clock(), limit)
        made = 0
        for delivery_id in due:
            if self._attempt(delivery_id):
                made += 1
        return made

    def _attempt(self, delivery_id: int, final: bool = False) -> bool:
        """One attempt at a delivery if it can be claimed; ``final``: no retry after it."""
        with self.database.transaction() as session:
            row = DeliveryRepository(session).claim(delivery_id, self.clock(), LEASE_SECONDS)
            if row is None:
                return False
            channel = session.get(ChannelRow, row.channel_id)
            attempts, payload, kind = row.attempts, dict(row.payload or {}), row.kind
            target = (channel.kind, channel.target, channel.secret) if channel is not None else None
        if target is None:
            outcome = Outcome(False, None, "the channel was removed")
        else:
            try:
                outcome = self._send(*target, payload, kind, delivery_id)
            except Exception as exc:  # a sender's own bug must not leave the delivery claimed
                log.exception("notification delivery %s failed", delivery_id)
                outcome = Outcome(False, None, f"internal error: {type(exc).__name__}: {exc}"[:500])
        now = self.clock()
        values: dict[str, Any] = {"response_status": outcome.status, "error": outcome.error}
        if outcome.ok:
            values |= {"status": DELIVERED, "delivered_at": now, "next_attempt_at": None, "error": None}
        elif final or attempts >= self.settings.notify_attempts:
            values |= {"status": FAILED, "next_attempt_at": None}
        else:
            wait = backoff_seconds(attempts, self.settings.notify_backoff_seconds)
            values |= {"status": PENDING, "next_attempt_at": now + timedelta(seconds=wait)}
        with self.database.transaction() as session:
            DeliveryRepository(session).settle(delivery_id, attempts, **values)
        if not outcome.ok and not final:  # a test's caller shows the outcome itself
            log.warning(
                "notification delivery %s (%s) attempt %s failed: %s",
                delivery_id,
                kind,
                attempts,
                outcome.error,
            )
        return True

    def _send(
        self,
        channel_kind: str,
        target: str,
        sealed: str | None,
        payload: dict[str, Any],
        kind: str,
        delivery_id: int,
    ) -> Outcome:
        message = Message(str(payload.get("title", "")), str(payload.get("text", "")))
        if channel_kind == "webhook":
            document = {
                "delivery_id": delivery_id,
                "kind": kind,
                **{key: payload.get(key) for key in ("event_id", "created_at", "classifier", "endpoint")},
                "title": message.title,
                "text": message.text,
                "data": payload.get("data") or {},
            }
            secret = self.box.open(sealed) if sealed else None
            return self.webhooks.send(target, secret, document, delivery_id)
        if channel_kind == "email":
            headers = {"X-Tagloop-Event": kind, "X-Tagloop-Delivery": str(delivery_id)}
            return self.email.send(check_addresses(target), message, headers)
        if channel_kind == "apprise" and sealed:
            return self.apprise.send(self.box.open(sealed), message)
        return Outcome(False, None, f"unknown channel kind {channel_kind!r}")

    # ---- figures -----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Deliveries by status for /metrics: a snapshot at most COUNTS_REFRESH_SECONDS old,
        refreshed in a background thread (a scrape never waits for the database)."""
        with self._counts_lock:
            stale = self._counts_at is None or time.monotonic() - self._counts_at >= COUNTS_REFRESH_SECONDS
            if stale:
                self._counts_at = time.monotonic()
                threading.Thread(
                    target=self._refresh_counts, name="tagloop-notify-counts", daemon=True
                ).start()
            return {status: self._counts.get(status, 0) for status in STATUSES} if self._counts else {}

    def refresh_counts(self) -> dict[str, int]:
        self._refresh_counts()
        return dict(self._counts)

    def _refresh_counts(self) -> None:
        try:
            with self.database.reading() as session:
                counts = DeliveryRepository(session).counts()
        except Exception:  # the database may be away: the next scrape tries again
            log.exception("counting notification deliveries failed")
            return
        with self._counts_lock:
            self._counts = {status: counts.get(status, 0) for status in STATUSES}


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _classifier_names(session: Any) -> dict[int, str]:
    return {id_: name for id_, name in session.execute(select(ClassifierRow.id, ClassifierRow.name))}


def _stored(
    message: Message, data: dict[str, Any], classifier: str | None, endpoint: str | None, created_at: datetime
) -> dict[str, Any]:
    """A delivery's payload: the message as rendered when it was queued, and the event's data."""
    return {
        "title": message.title,
        "text": message.text,
        "classifier": classifier,
        "endpoint": endpoint,
        "created_at": _aware(created_at).isoformat(),
        "data": data,
    }


def _delivery_summary(row: DeliveryRow, channel: str | None) -> dict[str, Any]:
    payload = row.payload or {}
    return {
        "id": row.id,
        "channel": channel,
        "event_id": row.event_id,
        "kind": row.kind,
        "title": payload.get("title"),
        "status": row.status,
        "attempts": row.attempts,
        "response_status": row.response_status,
        "error": row.error,
        "created_at": _iso(row.created_at),
        "last_attempt_at": _iso(row.last_attempt_at),
        "next_attempt_at": _iso(row.next_attempt_at) if row.status in (PENDING, SENDING) else None,
        "delivered_at": _iso(row.delivered_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return _aware(moment).isoformat() if moment is not None else None
