"""The pure part of notifications: signatures, backoff, which kinds a channel hears, target
checks (what an attacker might try through /v1) and the text a person reads."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tagloop.domain.notifications import (
    KINDS,
    TargetRefused,
    allowed_by,
    backoff_seconds,
    check_addresses,
    check_kinds,
    check_webhook_url,
    hears,
    render,
    shown_target,
    signature,
    verify,
    worst_labels,
)


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"kind":"training.completed"}'
    expected = hmac.new(b"s3cret-s3cret-s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret-s3cret-s3cret", "1700000000", body) == f"sha256={expected}"
    assert verify("s3cret-s3cret-s3cret", "1700000000", body, f"sha256={expected}")
    assert not verify("s3cret-s3cret-s3cret", "1700000001", body, f"sha256={expected}")  # a replayed body
    assert not verify("other-secret-other", "1700000000", body, f"sha256={expected}")
    assert not verify("s3cret-s3cret-s3cret", "1700000000", body + b" ", f"sha256={expected}")


def test_backoff_doubles_up_to_the_cap():
    assert [backoff_seconds(attempt, 30) for attempt in range(1, 6)] == [30, 60, 120, 240, 480]
    assert backoff_seconds(40, 30) == 3600
    assert backoff_seconds(3, 0) == 0


def test_kinds_families_and_internal_events():
    assert check_kinds(["training.*", "batch.completed", "training.*"]) == ["training.*", "batch.completed"]
    with pytest.raises(TargetRefused, match=r"unknown event kind 'pool\.fed'"):
        check_kinds(["pool.fed"])
    with pytest.raises(TargetRefused, match="unknown event kind"):
        check_kinds(["*"])
    assert hears([], "training.failed") and hears(["training.*"], "training.failed")
    assert not hears(["training.completed"], "training.failed")
    assert not hears([], "pool.rate") and not hears([], "pool.fed")  # internal: never sent
    assert set(KINDS) >= {"training.completed", "endpoint.deployed", "batch.completed", "drift.detected"}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https:///no-host", "name a host"),
        ("https://user:pw@hooks.example.com/x", "user name"),
        ("https://hooks.example.com/x#frag", "fragment"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "control"),
        ("https://hooks.example.com:99999/x", "valid URL"),
        ("https://hooks.example.com/" + "a" * 3000, "longer than"),
    ],
)
def test_malformed_webhook_urls_are_refused(url, reason):
    with pytest.raises(TargetRefused, match=reason):
        check_webhook_url(url)


ALLOWED = ("https://hooks.example.com/tagloop/", "@example.com")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1/keys",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/tagloop/",
        "http://hooks.example.com/tagloop/x",  # https downgraded to http
        "https://hooks.example.com:8443/tagloop/x",  # another port
        "https://hooks.example.com.evil.net/tagloop/x",  # a host with the allowed one as prefix
        "https://evil.net/tagloop/x?https://hooks.example.com/tagloop/",
        "https://hooks.example.com/tagloopx",  # not at a folder boundary
        "https://hooks.example.com/tagloop/../admin",
        "https://hooks.example.com/tagloop/%2e%2e/admin",
        "https://hooks.example.com/other/",
    ],
)
def test_webhooks_outside_the_allowlist_are_refused(url):
    assert not allowed_by("webhook", url, ALLOWED)


def test_webhooks_and_addresses_inside_the_allowlist():
    assert allowed_by("webhook", "https://hooks.example.com/tagloop/team-a?x=1", ALLOWED)
    assert allowed_by("webhook", "https://HOOKS.example.com:443/tagloop/", ALLOWED)
    assert allowed_by("email", "ops@example.com, Lead@EXAMPLE.com", ALLOWED)
    assert not allowed_by("email", "ops@example.com, spam@victim.org", ALLOWED)
    assert not allowed_by("email", "ops@sub.example.com", ALLOWED)
    assert not allowed_by("webhook", "https://hooks.example.com/tagloop/", ())  # empty: nothing
    assert not allowed_by("apprise", "json://hooks.example.com/tagloop/", ALLOWED)


def test_addresses_are_plain_and_bounded():
    assert check_addresses(" a@example.com,b.c+tag@mail.example.org ,") == [
        "a@example.com",
        "b.c+tag@mail.example.org",
    ]
    for bad in ("", "a@b", "Name <a@example.com>", "a@example.com\r\nBcc: x@evil.net", "a b@example.com"):
        with pytest.raises(TargetRefused):
            check_addresses(bad)
    with pytest.raises(TargetRefused, match="at most 20"):
        check_addresses(",".join(f"u{i}@example.com" for i in range(21)))


def test_shown_targets_hide_tokens():
    assert shown_target("webhook", "https://h.example.com/hook?token=abc") == "https://h.example.com/hook?…"
    assert shown_target("apprise", "tgram://123:secret/456") == "tgram://…"


def test_worst_labels_lowest_f1_first_ignoring_labels_without_test_documents():
    per_label = {
        "A": {"f1": 0.9, "support": 10},
        "B": {"f1": 0.5, "support": 3},
        "C": {"f1": 0.5, "support": 8},
        "D": {"f1": 0.0, "support": 0},
        "E": {"f1": 0.7, "support": 5},
    }
    assert worst_labels(per_label, 2) == [
        {"label": "C", "f1": 0.5, "support": 8},
        {"label": "B", "f1": 0.5, "support": 3},
    ]
    assert worst_labels(None) == []


def test_training_message_has_figures_identifiers_and_the_next_step():
    message = render(
        "training.completed",
        {
            "classifier": "desk",
            "version": "3",
            "metrics": {"Accuracy": 0.9123, "F1Score": 0.8871},
            "worst_labels": [{"label": "NETWORK", "f1": 0.61, "support": 12}],
            "documents": {"train": 900, "test": 100},
            "labels": ["A", "B", "NETWORK"],
            "train_seconds": 1.5,
        },
        region="eu-west-1",
        account="111122223333",
    )
    assert message.title == "Training done: desk version 3 (accuracy 0.912, F1 0.887 (macro))"
    assert "NETWORK F1 0.610 (12 test docs)" in message.text
    assert "900 train, 100 test documents, 3 labels" in message.text
    assert "arn:aws:comprehend:eu-west-1:111122223333:document-classifier/desk/version/3" in message.text
    assert "tagloop endpoints create NAME --classifier desk --version 3" in message.text


def test_every_kind_renders_even_with_missing_fields():
    for kind in KINDS:
        message = render(kind, {})
        assert message.title and "\n" not in message.title
    failed = render("training.failed", {"classifier": "desk", "version": "4", "message": "out of memory"})
    assert "Reason: out of memory" in failed.text
    deployed = render(
        "endpoint.deployed", {"endpoint": "desk-ep", "classifier": "desk", "version": "2", "previous": "1"}
    )
    assert "desk-ep is IN_SERVICE with classifier desk version 2 (was version 1)" in deployed.text
    assert "document-classifier-endpoint/desk-ep" in deployed.text
    batch = render(
        "batch.completed",
        {"job_id": "j1", "classifier": "desk", "version": "2", "documents": 1200, "errors": 0},
    )
    assert "classified 1,200 documents (0 errors)" in batch.text


def test_micro_f1_is_shown_only_when_it_tells_something_and_promotions_name_both_versions():
    multi_class = render(
        "endpoint.deployed", {"metrics": {"Accuracy": 0.8, "F1Score": 0.7, "MicroF1Score": 0.8}}
    )
    assert "micro F1" not in multi_class.text  # equals accuracy for one label per document
    multi_label = render(
        "endpoint.deployed", {"metrics": {"Accuracy": 0.5, "F1Score": 0.7, "MicroF1Score": 0.75}}
    )
    assert "micro F1 0.750" in multi_label.text
    first = render(
        "version.promoted", {"classifier": "desk", "to": "v1", "reason": "first following endpoint"}
    )
    assert "version v1 is its first champion" in first.text
    later = render(
        "version.promoted", {"classifier": "desk", "from": "v1", "to": "v2", "endpoints": ["desk-ep"]}
    )
    assert "version v2 replaces version v1 as champion" in later.text and "desk-ep" in later.text
