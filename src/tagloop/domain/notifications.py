"""Notifications, the pure part: which events are worth telling, the text a person reads, the
webhook signature, and the checks of channel targets (no I/O here; services/notify.py sends).

One message per event, written for a person who has to act on it: what happened, the figures
(accuracy, macro F1, the worst labels), and the identifiers needed next (classifier, version,
its Comprehend ARN, endpoint, job). Webhook bodies carry the same text beside the event's
payload, so a chat service's incoming webhook (which reads ``text``) shows it as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tagloop.domain.arns import Arns

# Events a channel may hear. ``pool.rate`` and ``pool.fed`` are internal watermarks: never sent.
KINDS = (
    "training.completed",
    "training.failed",
    "endpoint.deployed",
    "endpoint.failed",
    "version.promoted",
    "batch.completed",
    "batch.failed",
    "iteration.completed",
    "iteration.failed",
    "drift.detected",
    "inbox.processed",
    "inbox.failed",
)
TEST_KIND = "notify.test"  # a test message (`tagloop notify test`): no event behind it
CHANNEL_KINDS = ("webhook", "email", "apprise")
SIGNATURE_HEADER = "X-Tagloop-Signature"
TIMESTAMP_HEADER = "X-Tagloop-Timestamp"
MAX_ADDRESSES = 20
WORST_LABELS = 3
# one address: no spaces, commas, angle brackets or line breaks (nothing a header could be split by)
ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
MAX_URL_CHARS = 2048


class TargetRefused(ValueError):
    """A channel target that is malformed, or not allowed from where it was given."""


@dataclass(frozen=True)
class Message:
    """What a person reads: a one-line ``title`` (an e-mail subject) and the ``text`` body."""

    title: str
    text: str


def check_kinds(kinds: list[str]) -> list[str]:
    """The event kinds a channel hears (empty: all), each known, or a family such as
    ``training.*``; duplicates dropped, order kept."""
    families = {kind.partition(".")[0] for kind in KINDS}
    chosen: list[str] = []
    for kind in kinds:
        kind = kind.strip()
        known = kind in KINDS or (kind.endswith(".*") and kind[:-2] in families)
        if not known:
            raise TargetRefused(
                f"unknown event kind {kind!r}: use one of {', '.join(KINDS)} or a family such as training.*"
            )
        if kind not in chosen:
            chosen.append(kind)
    return chosen


def hears(kinds: list[str], kind: str) -> bool:
    """Whether a channel listening to ``kinds`` (empty: every kind) hears ``kind``."""
    if kind not in KINDS:
        return False
    return not kinds or kind in kinds or f"{kind.partition('.')[0]}.*" in kinds


# ---- targets ------------------------------------------------------------------------------
def check_webhook_url(url: str) -> str:
    """An http(s) URL with a host and no user name, query kept, fragment refused."""
    if len(url) > MAX_URL_CHARS:
        raise TargetRefused(f"webhook URL is longer than {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise TargetRefused("webhook URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        raise TargetRefused(f"webhook URL is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("webhook URL must start with http:// or https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("webhook URL must not hold a user name or password (use the secret)")
    if parts.fragment:
        raise TargetRefused("webhook URL must not have a #fragment")
    return url


def check_addresses(target: str) -> list[str]:
    """Comma-separated e-mail addresses, each plain ``name@domain`` (1 to MAX_ADDRESSES)."""
    addresses = [part.strip() for part in target.split(",") if part.strip()]
    if not addresses:
        raise TargetRefused("give at least one e-mail address")
    if len(addresses) > MAX_ADDRESSES:
        raise TargetRefused(f"at most {MAX_ADDRESSES} addresses per channel")
    for address in addresses:
        if len(address) > 254 or not ADDRESS.match(address):
            raise TargetRefused(f"{address[:80]!r} is not a plain e-mail address (name@domain)")
    return addresses


def allowed_by(target_kind: str, target: str, allowed: tuple[str, ...]) -> bool:
    """Whether a target given over the network lies within the operator's allowlist:
    a webhook URL under one of its URL prefixes (same scheme, host and port; the path at a
    ``/`` boundary), every e-mail address in one of its ``@domain`` entries."""
    if target_kind == "webhook":
        wanted = urlsplit(target)
        for entry in allowed:
            if not entry.startswith(("http://", "https://")):
                continue
            root = urlsplit(entry)
            same_origin = (wanted.scheme, wanted.hostname, _port(wanted)) == (
                root.scheme,
                root.hostname,
                _port(root),
            )
            prefix = root.path if root.path.endswith("/") else root.path + "/"
            path = wanted.path or "/"
            under = path == root.path or path.startswith(prefix) or prefix == "/"
            if same_origin and under and ".." not in path.split("/") and "%2e" not in path.lower():
                return True
        return False
    if target_kind == "email":
        domains = {entry[1:].lower() for entry in allowed if entry.startswith("@")}
        return all(address.rpartition("@")[2].lower() in domains for address in check_addresses(target))
    return False  # apprise reaches any host its URL names: only the CLI creates those


def _port(parts: Any) -> int:
    return int(parts.port or (443 if parts.scheme == "https" else 80))


def shown_target(kind: str, target: str) -> str:
    """A target as lists show it: a webhook URL without its query (tokens often sit there)."""
    if kind == "webhook":
        parts = urlsplit(target)
        return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")
    if kind == "apprise":
        return target.partition("://")[0] + "://…"
    return target


# ---- signature ----------------------------------------------------------------------------
def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``: the receiver recomputes it
    over the timestamp header and the raw body, and refuses an old timestamp (replays)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """The receiver's check (documented, and used by the tests' receiver)."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def backoff_seconds(attempt: int, base: float, cap: float = 3600.0) -> float:
    """Wait before attempt ``attempt + 1``: base, 2·base, 4·base, ... at most ``cap``."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


# ---- figures and text ---------------------------------------------------------------------
def worst_labels(
    per_label: dict[str, dict[str, Any]] | None, count: int = WORST_LABELS
) -> list[dict[str, Any]]:
    """The ``count`` labels with the lowest F1 on the test set (ties: more test documents first)."""
    found = [
        (float(values.get("f1", 0.0)), int(values.get("support", 0)), str(label))
        for label, values in (per_label or {}).items()
        if int(values.get("support", 0)) > 0
    ]
    found.sort(key=lambda row: (row[0], -row[1], row[2]))
    return [{"label": label, "f1": f1, "support": support} for f1, support, label in found[:count]]


def _figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _metric_line(metrics: dict[str, Any] | None) -> str:
    metrics = metrics or {}
    parts = [f"accuracy {_figure(metrics.get('Accuracy'))}", f"F1 {_figure(metrics.get('F1Score'))} (macro)"]
    micro, accuracy = metrics.get("MicroF1Score"), metrics.get("Accuracy")
    if isinstance(micro, float) and not (isinstance(accuracy, float) and abs(micro - accuracy) < 1e-9):
        parts.append(f"micro F1 {_figure(metrics.get('MicroF1Score'))}")
    return ", ".join(parts)


def _seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, int | float) else "- s"


def _documents(documents: Any) -> str:
    """``{"train": 900, "test": 100}`` (a version's counts) or a number, as words."""
    if isinstance(documents, dict):
        parts = [f"{int(count):,} {split}" for split, count in documents.items() if isinstance(count, int)]
        return (", ".join(parts) or "0") + " documents"
    return f"{int(documents or 0):,} documents"


def _worst_line(worst: list[dict[str, Any]] | None) -> str | None:
    if not worst:
        return None
    shown = "; ".join(f"{row['label']} F1 {_figure(row['f1'])} ({row['support']} test docs)" for row in worst)
    return f"Weakest labels: {shown}"


def render(
    kind: str, payload: dict[str, Any], region: str = "us-east-1", account: str = "123456789012"
) -> Message:
    """The title and text of an event of ``kind`` with ``payload`` (unknown fields ignored;
    missing ones shown as ``-``, so an older event still renders)."""
    get = payload.get
    classifier, version = get("classifier") or "-", get("version")
    lines: list[str] = []
    arns = Arns(region, account)
    arn = arns.classifier(classifier, str(version)) if classifier != "-" and version else None
    if kind == "training.completed":
        title = f"Training done: {classifier} version {version} ({_metric_line(get('metrics'))})"
        lines.append(f"Classifier {classifier}: version {version} is TRAINED.")
        lines.append(f"Test set: {_metric_line(get('metrics'))}.")
        lines.append(_worst_line(get("worst_labels")) or "")
        lines.append(
            f"Data: {_documents(get('documents'))}, {len(get('labels') or [])} labels; "
            f"trained in {_seconds(get('train_seconds'))}."
        )
        lines.append(f"Next: tagloop endpoints create NAME --classifier {classifier} --version {version}")
    elif kind == "training.failed":
        title = f"Training failed: {classifier} version {version}"
        lines.append(
            f"Classifier {classifier}: training of version {version} failed ({get('status') or 'IN_ERROR'})."
        )
        lines.append(f"Reason: {get('message') or '-'}")
        lines.append(
            f"Next: tagloop versions {classifier} {version}; fix the cause, then tagloop jobs retry JOB"
        )
    elif kind == "endpoint.deployed":
        title = f"Deployed: endpoint {get('endpoint')} serves {classifier} version {version}"
        lines.append(
            f"Endpoint {get('endpoint')} is IN_SERVICE with classifier {classifier} version {version}"
            + (f" (was version {get('previous')})." if get("previous") else ".")
        )
        lines.append(f"Version figures: {_metric_line(get('metrics'))}.")
        lines.append(f"Endpoint ARN: {arns.endpoint(str(get('endpoint')))}")
    elif kind == "endpoint.failed":
        title = f"Deployment failed: endpoint {get('endpoint')}, {classifier} version {version}"
        lines.append(f"Endpoint {get('endpoint')} is {get('status')}: {get('message') or '-'}")
    elif kind == "version.promoted":
        title = f"Promoted: {classifier} version {get('to')} is the champion"
        lines.append(
            f"Classifier {classifier}: version {get('to')} replaces version {get('from')} as champion."
            if get("from")
            else f"Classifier {classifier}: version {get('to')} is its first champion."
        )
        lines.append(f"Reason: {get('reason') or '-'}")
        moved = get("endpoints") or []
        lines.append(f"Endpoints now serving it: {', '.join(moved) if moved else 'none moved'}")
        arn = arns.classifier(classifier, str(get("to"))) if get("to") else None
    elif kind in ("batch.completed", "batch.failed"):
        done = kind == "batch.completed"
        title = (
            f"Batch {'finished' if done else 'failed'}: {classifier} version {version}, job {get('job_id')}"
        )
        if done:
            lines.append(
                f"Batch job {get('job_id')} classified {get('documents') or 0:,} documents "
                f"({get('errors') or 0:,} errors) with classifier {classifier} version {version}."
            )
            lines.append(f"Output: {get('output') or '-'}")
        else:
            lines.append(
                f"Batch job {get('job_id')} ({classifier} version {version}) failed: {get('message') or '-'}"
            )
            lines.append(f"Input: {get('input') or '-'}. Next: tagloop jobs show {get('job_id')}")
    elif kind == "iteration.completed":
        decision = get("decision") or "-"
        title = f"Iteration {get('iteration')} of {classifier}: {decision}"
        lines.append(
            f"Challenger {get('challenger') or '-'} against champion {get('champion') or '-'}: {decision}."
        )
        lines.append(f"Reason: {get('reason') or '-'}")
        metrics = get("metrics") or {}
        if isinstance(metrics, dict):
            for who in ("champion", "challenger"):
                if isinstance(metrics.get(who), dict):
                    lines.append(f"{who.capitalize()}: {_metric_line(metrics[who])}.")
        moved_by = get("endpoints") or []
        if moved_by:
            lines.append(f"Endpoints moved: {', '.join(str(name) for name in moved_by)}")
        arn = None
    elif kind == "iteration.failed":
        title = f"Iteration {get('iteration')} of {classifier} failed"
        lines.append(f"Reason: {get('message') or '-'}")
    elif kind == "drift.detected":
        training = (get("vs_training") or {}) if isinstance(get("vs_training"), dict) else {}
        psi_labels = (training.get("labels") or {}).get("psi")
        psi_scores = (training.get("scores") or {}).get("psi")
        title = f"Drift on endpoint {get('endpoint')} ({classifier} version {version}) on {get('window')}"
        lines.append(
            f"{get('predictions') or 0:,} predictions on {get('window')}: "
            f"PSI of labels {_figure(psi_labels)}, of scores {_figure(psi_scores)} "
            f"against the training data (threshold {get('psi_threshold')})."
        )
        lines.append(f"Next: tagloop monitor {get('endpoint')}")
    elif kind in ("inbox.processed", "inbox.failed"):
        ok = kind == "inbox.processed"
        title = f"Inbox {get('inbox') or '-'}: {get('file') or 'a file'} {'processed' if ok else 'failed'}"
        if ok:
            lines.append(f"Classifier {classifier} version {version}: {_metric_line(get('metrics'))}.")
            lines.append(_worst_line(get("worst_labels")) or "")
            if get("endpoint"):
                lines.append(f"Endpoint: {get('endpoint')} ({get('deployed') or 'deployed'})")
        else:
            lines.append(f"Reason: {get('message') or get('error') or '-'}")
    elif kind == TEST_KIND:
        title = "tagloop test notification"
        lines.append(
            f"This is a test message for channel {get('channel')}: it arrives, so notifications work."
        )
    else:
        title = f"tagloop event {kind}"
        lines.append(", ".join(f"{key}: {value}" for key, value in sorted(payload.items()))[:2000])
    if arn:
        lines.append(f"Comprehend ARN: {arn}")
    return Message(title[:300], "\n".join(line for line in lines if line))
