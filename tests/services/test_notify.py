"""Notifications end to end on real parts: events recorded by real trainings, deployments and
batch jobs; a local HTTP receiver (signatures verified, failures, redirects, huge answers); a
real SMTP server (aiosmtpd); the delivery log's retries, backoff, claims and cursor."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import timedelta
from email.message import EmailMessage as MailMessage
from typing import Any

import pytest

from tagloop.domain.notifications import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tagloop.errors import AlreadyExists, InvalidRequest, NotFound
from tagloop.services.batch import BatchRequest
from tagloop.services.notify import ChannelService
from tagloop.services.training import TrainRequest
from tagloop.storage.events import EventRepository
from tagloop.storage.notify import DeliveryRepository
from tagloop.storage.tables import ChannelRow, DeliveryRow, EventRow, utcnow

SECRET = "receiver-shared-secret-0123"


def headers_of(request: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in request["headers"].items()}


def record(tagloop, kind: str, payload: dict[str, Any], classifier_id: int | None = None) -> None:
    with tagloop.database.transaction() as session:
        EventRepository(session).add(kind, payload, classifier_id=classifier_id)


def events(tagloop, kind: str) -> list[dict[str, Any]]:
    with tagloop.database.reading() as session:
        rows = session.query(EventRow).filter(EventRow.kind == kind).order_by(EventRow.id).all()
        return [dict(row.payload) for row in rows]


def test_a_webhook_is_retried_until_the_receiver_takes_it_signature_verified(
    make_tagloop, tickets_csv, webhook_receiver
):
    tagloop = make_tagloop(notify_backoff_seconds=0)
    added = tagloop.notify.add("team", "webhook", webhook_receiver.url, ["training.*"], secret=SECRET)
    assert added["secret"] == SECRET and added["events"] == ["training.*"]
    trained = tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    webhook_receiver.answers = [500, 503]  # fails twice, then 200
    for _ in range(3):
        tagloop.notify.tick()
    assert len(webhook_receiver.requests) == 3
    deliveries = {headers_of(request)["x-tagloop-delivery"] for request in webhook_receiver.requests}
    assert len(deliveries) == 1  # one delivery, three attempts
    for request in webhook_receiver.requests:
        headers = headers_of(request)
        assert verify(
            SECRET, headers[TIMESTAMP_HEADER.lower()], request["body"], headers[SIGNATURE_HEADER.lower()]
        )
        assert not verify(
            "another-secret-entirely",
            headers[TIMESTAMP_HEADER.lower()],
            request["body"],
            headers[SIGNATURE_HEADER.lower()],
        )
        assert headers["x-tagloop-event"] == "training.completed"
    body = json.loads(webhook_receiver.requests[-1]["body"])
    assert body["kind"] == "training.completed" and body["classifier"] == "desk"
    assert body["data"]["version"] == trained["version"]
    assert body["data"]["metrics"]["Accuracy"] == pytest.approx(trained["metrics"]["Accuracy"])
    assert len(body["data"]["worst_labels"]) == 3
    assert f"accuracy {trained['metrics']['Accuracy']:.3f}" in body["title"]
    assert f"document-classifier/desk/version/{trained['version']}" in body["text"]
    [delivery] = tagloop.notify.deliveries("team")
    assert (delivery["status"], delivery["attempts"], delivery["response_status"]) == ("delivered", 3, 200)
    tagloop.notify.tick()
    assert len(webhook_receiver.requests) == 3  # delivered once: never again


def test_backoff_doubles_then_the_delivery_fails_and_can_be_retried(make_tagloop, webhook_receiver):
    tagloop = make_tagloop(notify_attempts=3, notify_backoff_seconds=30)
    now = [utcnow()]
    notify = ChannelService(tagloop.database, tagloop.settings, tagloop.notify.box, clock=lambda: now[0])
    notify.add("ops", "webhook", webhook_receiver.url)
    record(tagloop, "drift.detected", {"endpoint": "desk-ep", "classifier": "desk", "window": "2026-12-01"})
    webhook_receiver.answers = [500] * 10
    webhook_receiver.answer_body = b"receiver is down"
    start = now[0]

    def state() -> tuple[str, int, Any]:
        with tagloop.database.reading() as session:
            row = session.query(DeliveryRow).one()
            return row.status, row.attempts, row.next_attempt_at

    notify.tick()
    status, attempts, due = state()
    assert (status, attempts) == ("pending", 1) and due.replace(tzinfo=None) == (
        start + timedelta(seconds=30)
    ).replace(tzinfo=None)
    now[0] = start + timedelta(seconds=29)
    notify.tick()
    assert state()[1] == 1  # not due yet
    now[0] = start + timedelta(seconds=30)
    notify.tick()
    status, attempts, due = state()
    assert (status, attempts) == ("pending", 2) and due.replace(tzinfo=None) == (
        now[0] + timedelta(seconds=60)
    ).replace(tzinfo=None)
    now[0] += timedelta(seconds=60)
    notify.tick()
    assert state()[:2] == ("failed", 3)
    [failed] = notify.deliveries(status="failed")
    assert failed["error"] == "HTTP 500: receiver is down" and failed["response_status"] == 500
    assert len(webhook_receiver.requests) == 3
    assert notify.retry("ops") == {"channel": "ops", "requeued": 1}
    webhook_receiver.answers = []
    notify.tick()
    assert state()[:2] == ("delivered", 1)


def test_a_delivery_is_claimed_by_one_process_at_a_time(make_tagloop, database_url):
    first = make_tagloop(database_url=database_url)
    second = make_tagloop(database_url=database_url)  # another process on the same database
    first.notify.add("ops", "webhook", "http://127.0.0.1:9/never")
    record(first, "iteration.failed", {"classifier": "desk", "iteration": "i1", "message": "boom"})
    assert first.notify.collect() == 1
    assert second.notify.collect() == 0  # the same event, a second reader: no second delivery
    now = utcnow()
    with first.database.transaction() as session:
        [delivery_id] = DeliveryRepository(session).due_ids(now, 10)
        assert DeliveryRepository(session).claim(delivery_id, now, 120) is not None
    with second.database.transaction() as session:
        assert DeliveryRepository(session).due_ids(now, 10) == []
        assert (
            DeliveryRepository(session).settle(delivery_id, 2, status="delivered") is False
        )  # not its claim
        assert DeliveryRepository(session).claim(delivery_id, now, 120) is None
        later = now + timedelta(seconds=121)  # the first process died while sending: lease over
        assert DeliveryRepository(session).claim(delivery_id, later, 120) is not None


def test_finished_deliveries_are_pruned_after_the_keep_days_pending_ones_never(make_tagloop, database_url):
    tagloop = make_tagloop(database_url=database_url, notify_keep_days=30)
    now = utcnow()
    notify = ChannelService(tagloop.database, tagloop.settings, tagloop.notify.box, clock=lambda: now)
    ticks = [0.0]
    notify._monotonic = lambda: ticks[0]  # the ticker's hourly check, without waiting an hour
    notify.add("ops", "webhook", "http://127.0.0.1:9/never")
    notify.set_enabled("ops", False)  # nothing is sent: the statuses stay as written

    def ago(days: float):
        return now - timedelta(days=days)

    def delivery(status: str, created: float, attempted: float, delivered: float | None = None) -> int:
        with tagloop.database.transaction() as session:
            channel_id = session.query(ChannelRow).one().id
            return (
                DeliveryRepository(session)
                .add(
                    channel_id=channel_id,
                    kind="test",
                    payload={},
                    status=status,
                    created_at=ago(created),
                    last_attempt_at=ago(attempted),
                    delivered_at=None if delivered is None else ago(delivered),
                    next_attempt_at=ago(attempted) if status in ("pending", "sending") else None,
                )
                .id
            )

    ids = {
        "delivered long ago": delivery("delivered", 40, 31, 31),
        "delivered lately": delivery("delivered", 29, 29, 29),
        "failed long ago": delivery("failed", 40, 31),
        "failed lately": delivery("failed", 40, 29),  # created long ago, last attempt lately
        "retried, delivered lately": delivery("delivered", 60, 1, 1),
        "pending for long": delivery("pending", 60, 59),
        "sending for long": delivery("sending", 60, 59),
    }

    def left() -> set[str]:
        with tagloop.database.reading() as session:
            found = {row.id for row in session.query(DeliveryRow)}
        return {name for name, id_ in ids.items() if id_ in found}

    unpruned = ChannelService(
        tagloop.database, tagloop.settings.model_copy(update={"notify_keep_days": 0}), tagloop.notify.box
    )
    assert unpruned.prune() == 0 and len(left()) == 7  # 0: kept forever
    assert notify.prune() == 2
    assert left() == {
        "delivered lately",
        "failed lately",
        "retried, delivered lately",
        "pending for long",
        "sending for long",
    }
    with tagloop.database.transaction() as session:  # a batch at a time
        assert DeliveryRepository(session).delete_finished_before(ago(0), 1) == 1
    # the ticker's part prunes at once, then once an hour
    ids["old one"] = delivery("delivered", 50, 50, 50)
    notify.tick()
    assert "old one" not in left()
    ids["another old one"] = delivery("failed", 50, 50)
    ticks[0] += 3599
    notify.tick()
    assert "another old one" in left()
    ticks[0] += 1
    notify.tick()
    assert "another old one" not in left()
    assert {"pending for long", "sending for long"} <= left()


def test_channels_hear_their_kinds_and_classifier_and_only_what_happens_after_them(
    make_tagloop, database_url, tickets_csv, webhook_receiver
):
    tagloop = make_tagloop(database_url=database_url)
    record(tagloop, "drift.detected", {"endpoint": "old"})  # before any channel: never sent
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    tagloop.notify.add("everything", "webhook", webhook_receiver.url)
    tagloop.notify.add("batches", "webhook", webhook_receiver.url, ["batch.*"])
    tagloop.notify.add("desk-only", "webhook", webhook_receiver.url, classifier="desk")
    with pytest.raises(AlreadyExists):
        tagloop.notify.add("batches", "email", "a@example.com")
    with pytest.raises(NotFound):
        tagloop.notify.add("ghost", "webhook", webhook_receiver.url, classifier="nobody")
    with pytest.raises(InvalidRequest, match="unknown event kind"):
        tagloop.notify.add("internal", "webhook", webhook_receiver.url, ["pool.fed"])
    with tagloop.database.reading() as session:
        desk_id = session.query(EventRow.classifier_id).filter(EventRow.kind == "training.completed").scalar()
    record(tagloop, "batch.completed", {"job_id": "j1", "classifier": "desk"}, desk_id)
    record(tagloop, "drift.detected", {"endpoint": "other-ep"})
    record(tagloop, "pool.fed", {"through": 5})  # internal
    tagloop.notify.tick()
    tagloop.notify.tick()  # unsettled events are read again: no duplicates
    kinds = {
        channel: sorted(d["kind"] for d in tagloop.notify.deliveries(channel))
        for channel in ("everything", "batches", "desk-only")
    }
    assert kinds == {
        "everything": ["batch.completed", "drift.detected"],
        "batches": ["batch.completed"],
        "desk-only": ["batch.completed"],
    }
    assert len(webhook_receiver.requests) == 4
    tagloop.notify.set_enabled("batches", False)
    record(tagloop, "batch.failed", {"job_id": "j2", "classifier": "desk"}, desk_id)
    tagloop.notify.tick()
    assert len(tagloop.notify.deliveries("batches")) == 1  # paused
    # a delivery waiting when its channel is paused waits with it, and goes once it is enabled
    with tagloop.database.transaction() as session:
        session.query(DeliveryRow).update(
            {
                DeliveryRow.status: "pending",
                DeliveryRow.attempts: 0,
                DeliveryRow.next_attempt_at: utcnow() - timedelta(seconds=1),
            }
        )
    sent = len(webhook_receiver.requests)
    tagloop.notify.tick()
    assert len(webhook_receiver.requests) == sent + 5  # everything's 3 and desk-only's 2, not batches
    assert [d["status"] for d in tagloop.notify.deliveries("batches")] == ["pending"]
    tagloop.notify.set_enabled("batches", True)
    tagloop.notify.tick()
    assert [d["status"] for d in tagloop.notify.deliveries("batches")] == ["delivered"]
    tagloop.notify.set_enabled("batches", False)
    assert tagloop.notify.remove("everything")["removed"] is True
    assert [c["name"] for c in tagloop.notify.list()] == ["batches", "desk-only"]


def test_training_deployment_and_batch_events_are_recorded_with_their_state(
    make_tagloop, tickets_csv, tmp_path
):
    tagloop = make_tagloop()
    trained = tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    [done] = events(tagloop, "training.completed")
    assert done["version"] == trained["version"] and done["status"] == "TRAINED"
    assert done["metrics"]["F1Score"] == pytest.approx(trained["metrics"]["F1Score"])
    assert done["job_id"] == trained["job_id"] and done["documents"] == trained["documents"]
    worst = min(trained["metrics"] and done["worst_labels"], key=lambda row: row["f1"])
    assert worst == done["worst_labels"][0]

    created = tagloop.endpoints.create("desk-ep", "desk")
    tagloop.queue.run_now(created["job_id"])
    [deployed] = events(tagloop, "endpoint.deployed")
    assert (deployed["endpoint"], deployed["version"], deployed["status"]) == (
        "desk-ep",
        trained["version"],
        "IN_SERVICE",
    )

    (tmp_path / "blocker").write_text("a file where the artifact folder should be")
    broken = make_tagloop(artifacts_url=str(tmp_path / "blocker" / "artifacts"))
    submission = broken.training.submit(TrainRequest(classifier="desk", data=str(tickets_csv)))
    with pytest.raises(OSError):
        broken.queue.run_now(submission.job_id)  # an unexpected error: the job gives up
    [failed] = events(tagloop, "training.failed")
    assert failed["status"] == "IN_ERROR" and "Not a directory" in failed["message"]
    assert failed["job_id"] == submission.job_id

    source = tmp_path / "in"
    source.mkdir()
    (source / "a.txt").write_text("printer jammed\nVPN is down\nnew laptop please\n", encoding="utf-8")
    ok = tagloop.batch.submit(BatchRequest("desk", str(source), str(tmp_path / "out"), shard_documents=2))
    (tmp_path / "blank.txt").write_text("", encoding="utf-8")
    bad = tagloop.batch.submit(BatchRequest("desk", str(tmp_path / "blank.txt"), str(tmp_path / "out")))
    tagloop.start_workers()
    tagloop.queue.wait(ok, timeout=120)
    tagloop.queue.wait(bad, timeout=120)
    [completed] = events(tagloop, "batch.completed")
    assert (completed["job_id"], completed["documents"], completed["errors"]) == (ok, 3, 0)
    [batch_failed] = events(tagloop, "batch.failed")
    assert batch_failed["job_id"] == bad and "no documents" in batch_failed["message"]


def test_redirects_are_not_followed_and_answers_are_read_bounded(make_tagloop, webhook_receiver):
    from tagloop.services.notify_senders import RESPONSE_BYTES

    tagloop = make_tagloop()
    tagloop.notify.add("hook", "webhook", webhook_receiver.url)
    webhook_receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    moved = tagloop.notify.test("hook")
    assert moved["status"] == "failed" and moved["response_status"] == 302
    assert "redirect to http://169.254.169.254/latest/meta-data/ (not followed)" in moved["error"]
    webhook_receiver.redirect_to = None
    webhook_receiver.answers = [500]
    webhook_receiver.answer_body = b"x" * 5_000_000
    big = tagloop.notify.test("hook")
    assert big["status"] == "failed" and len(big["error"]) <= 520
    assert RESPONSE_BYTES < 5_000_000


def _mail_server(port: int):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Handler:
        def __init__(self) -> None:
            self.messages: list[tuple[list[str], bytes]] = []
            self.logins: list[tuple[bytes, bytes]] = []

        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
            if address.endswith("@nowhere.example.com"):
                return "550 5.1.1 no such mailbox"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
            return "250 OK"

    handler = Handler()

    def authenticator(server, session, envelope, mechanism, data):
        handler.logins.append((data.login, data.password))
        return AuthResult(success=data.login == b"tagloop" and data.password == b"smtp-password")

    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    return controller, handler


@pytest.fixture
def mail_server(free_port):
    controller, handler = _mail_server(free_port())
    yield controller, handler
    controller.stop()


def test_an_email_arrives_at_a_real_smtp_server_with_the_figures(make_tagloop, tickets_csv, mail_server):
    controller, handler = mail_server
    port = controller.port
    tagloop = make_tagloop(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_user="tagloop",
        smtp_password="smtp-password",
        smtp_from="tagloop@ml.example.com",
    )
    tagloop.notify.add("ops", "email", "ops@example.com, lead@example.com", ["training.completed"])
    trained = tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    tagloop.notify.tick()
    assert handler.logins == [(b"tagloop", b"smtp-password")]
    [(recipients, raw)] = handler.messages
    assert recipients == ["ops@example.com", "lead@example.com"]
    mail: MailMessage = email.message_from_bytes(raw, policy=email.policy.default)  # headers unfolded
    version = trained["version"]
    accuracy = f"{trained['metrics']['Accuracy']:.3f}"
    assert mail["Subject"].startswith(f"[tagloop] Training done: desk version {version} (accuracy {accuracy}")
    assert mail["From"] == "tagloop@ml.example.com" and mail["X-Tagloop-Event"] == "training.completed"
    text = mail.get_content()
    assert f"Classifier desk: version {version} is TRAINED." in text
    assert "Weakest labels: " in text
    arn = f"arn:aws:comprehend:us-east-1:123456789012:document-classifier/desk/version/{version}"
    assert f"Comprehend ARN: {arn}" in text
    [delivery] = tagloop.notify.deliveries("ops")
    assert (delivery["status"], delivery["response_status"]) == ("delivered", 250)


def test_email_without_a_server_or_to_a_refused_mailbox_fails_clearly(make_tagloop, mail_server):
    tagloop = make_tagloop()
    tagloop.notify.add("ops", "email", "ops@nowhere.example.com")
    result = tagloop.notify.test("ops")
    assert result["status"] == "failed" and "TAGLOOP_SMTP_HOST" in result["error"]
    controller, handler = mail_server
    served = make_tagloop(smtp_host="127.0.0.1", smtp_port=controller.port, smtp_starttls=False)
    refused = served.notify.test("ops")
    assert (
        refused["status"] == "failed" and "550" in refused["error"] and "no such mailbox" in refused["error"]
    )
    assert handler.messages == []


def test_an_apprise_channel_reaches_a_json_receiver_and_keeps_its_url_sealed(make_tagloop, webhook_receiver):
    pytest.importorskip("apprise")
    tagloop = make_tagloop()
    url = f"json://127.0.0.1:{webhook_receiver.port}/hook?token=very-secret"
    added = tagloop.notify.add("chat", "apprise", url)
    assert added["target"] == "json://…" and "very-secret" not in json.dumps(tagloop.notify.list())
    result = tagloop.notify.test("chat")
    assert result["status"] == "delivered", result
    [request] = webhook_receiver.requests
    body = json.loads(request["body"])
    assert body["title"] == "tagloop test notification" and "channel chat" in body["message"]
    with pytest.raises(InvalidRequest, match="apprise does not recognise"):
        tagloop.notify.add("nonsense", "apprise", "nosuchservice://x")
