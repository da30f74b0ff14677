"""The ways a notification leaves the machine: a signed webhook (httpx), e-mail (smtplib) and,
when the optional ``apprise`` package is installed, the chat services apprise reaches.

Each sender makes one attempt and tells how it went (:class:`Outcome`); retries, backoff and
the delivery log are ``services/notify.py``'s. Nothing here raises for a receiver's failure.
"""

from __future__ import annotations

import email.policy
import importlib
import json
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx

from tagloop import __version__
from tagloop.domain.notifications import SIGNATURE_HEADER, TIMESTAMP_HEADER, Message, signature
from tagloop.errors import ConfigurationError, InvalidRequest
from tagloop.settings import Settings

# headers unfolded up to RFC 5322's 998 characters (titles are at most 300): the default 78
# folds a subject anywhere, even right after "Subject:", which clients then show with a space
MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)
RESPONSE_BYTES = 2048  # of a receiver's answer kept in the delivery log (never more is read)
ERROR_CHARS = 500


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None = None  # the receiver's HTTP status (webhooks) or SMTP reply code
    error: str | None = None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + "…"


def webhook_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


class WebhookSender:
    """POST the JSON document; 2xx is delivered, anything else (a redirect included: they are
    not followed) is a failed attempt. The receiver's answer is read up to RESPONSE_BYTES."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout = httpx.Timeout(timeout_seconds)
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        """One client per process (thread-safe; building one loads the CA bundle, ~0.1 s).
        trust_env off: no .netrc credentials or proxy variables applied to a receiver's host."""
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False, timeout=self.timeout, trust_env=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def send(self, url: str, secret: str | None, document: dict[str, Any], delivery_id: int) -> Outcome:
        body = webhook_body(document)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"tagloop/{__version__}",
            "X-Tagloop-Event": str(document.get("kind")),
            "X-Tagloop-Delivery": str(delivery_id),
            TIMESTAMP_HEADER: timestamp,
        }
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
        try:
            with self.client.stream("POST", url, content=body, headers=headers) as response:
                answer = b""
                for chunk in response.iter_bytes():
                    answer += chunk
                    if len(answer) >= RESPONSE_BYTES:
                        break
                status = response.status_code
        except httpx.HTTPError as exc:
            return Outcome(False, None, _clip(f"{type(exc).__name__}: {exc}") or type(exc).__name__)
        if 200 <= status < 300:
            return Outcome(True, status)
        reason = answer[:RESPONSE_BYTES].decode("utf-8", "replace")
        if 300 <= status < 400:
            reason = f"redirect to {response.headers.get('location', '?')} (not followed)"
        return Outcome(False, status, _clip(f"HTTP {status}: {reason}"))


class EmailSender:
    """One message to the channel's addresses through TAGLOOP_SMTP_HOST."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, addresses: list[str], message: Message, headers: dict[str, str]) -> Outcome:
        s = self.settings
        if not s.smtp_host:
            return Outcome(False, None, "no SMTP server: set TAGLOOP_SMTP_HOST (and port, credentials)")
        mail = EmailMessage(policy=MAIL_POLICY)
        mail["Subject"] = "[tagloop] " + " ".join(message.title.split())
        mail["From"] = s.smtp_from
        mail["To"] = ", ".join(addresses)
        mail["Message-ID"] = make_msgid(domain=s.smtp_from.rpartition("@")[2] or None)
        for name, value in headers.items():
            mail[name] = value
        body = message.text + "\n\n-- \nSent by tagloop. Channels: tagloop notify list\n"
        # labels may be any text: non-ASCII bodies quoted-printable (no 8BITMIME needed)
        mail.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
        try:
            context = ssl.create_default_context()
            smtp: smtplib.SMTP
            if s.smtp_ssl:
                smtp = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=s.notify_timeout_seconds, context=context
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.notify_timeout_seconds)
            with smtp:
                if s.smtp_starttls and not s.smtp_ssl:
                    smtp.starttls(context=context)
                if s.smtp_user:
                    password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                    smtp.login(s.smtp_user, password)
                refused = smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            detail = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else exc.smtp_error
            )
            return Outcome(False, exc.smtp_code, _clip(f"SMTP {exc.smtp_code}: {detail}"))
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome(False, None, _clip(f"{type(exc).__name__}: {exc}") or type(exc).__name__)
        if refused:
            return Outcome(False, None, _clip(f"refused recipients: {', '.join(sorted(refused))}"))
        return Outcome(True, 250)


def _apprise() -> Any:
    """The optional apprise package (extra ``tagloop[apprise]``), imported by name: the
    runtime dependencies do not install it, and nothing else needs it."""
    return importlib.import_module("apprise")


class AppriseSender:
    """Through the optional apprise package (``pip install tagloop[apprise]``): one URL of any
    service it knows (``tgram://``, ``slack://``, ``mailto://``, ``json://`` ...)."""

    def send(self, url: str, message: Message) -> Outcome:
        try:
            apprise = _apprise()
        except ImportError:
            return Outcome(False, None, "apprise is not installed: pip install 'tagloop[apprise]'")
        notifier = apprise.Apprise()
        if not notifier.add(url):
            return Outcome(False, None, "apprise does not recognise this URL")
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = notifier.notify(body=message.text, title=message.title)
            logged = captured.getvalue() if hasattr(captured, "getvalue") else ""
        if ok:
            return Outcome(True)
        return Outcome(False, None, _clip(str(logged) or "apprise reported a failure"))


def check_apprise_url(url: str) -> None:
    """Refuse a URL apprise cannot use (or apprise missing), when the channel is added."""
    try:
        apprise = _apprise()
    except ImportError as exc:
        raise ConfigurationError(
            "apprise channels need the apprise package: pip install 'tagloop[apprise]'"
        ) from exc
    if not apprise.Apprise().add(url):
        raise InvalidRequest(
            "apprise does not recognise this URL (see https://github.com/caronc/apprise/wiki)"
        )
