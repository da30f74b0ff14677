"""AWS Signature Version 4 verification of incoming requests, checked as AWS checks them.

The canonical request is rebuilt from what arrived (method, path, query, the signed headers
with their received values, repeated headers joined with commas as AWS does, and the SHA-256
of the body as received) and signed again with the key's secret, with botocore's own signer;
the result must equal the client's signature (constant-time comparison). Before that:

- the request date must be within five minutes of now, and the credential scope's date must
  be the date of ``X-Amz-Date``;
- the scope's service must be the one of the API called (``comprehend`` for the Comprehend
  API) and its region the server's (``TAGLOOP_AWS_REGION``) unless any region is allowed;
- ``host`` and ``x-amz-date`` must be signed, and so must ``x-amz-target`` and
  ``content-type`` when the request has them (they choose the operation and how the body
  is read: a signature that leaves them out could be replayed as another operation);
- the body is always hashed: an ``x-amz-content-sha256`` header must equal that hash
  (``UNSIGNED-PAYLOAD`` and streaming payloads are refused), and the canonical request uses
  the hash of the body received, never the header's word for it.

What needs no body is checked before one is read: the server refuses a request whose
``Authorization`` header is missing or malformed, or names no active key
(:func:`access_key_id`, ``CredentialsFirst`` in ``api/server.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from botocore.utils import normalize_url_path

from tagloop.errors import InvalidSignature, MissingAuthentication, UnrecognizedClient
from tagloop.services.keys import KeyService, Principal

MAX_SKEW_SECONDS = 300
ALGORITHM = "AWS4-HMAC-SHA256"  # the first word of a SigV4 Authorization header
ALWAYS_SIGNED = ("host", "x-amz-date")
SIGNED_WHEN_SENT = ("x-amz-target", "content-type")
PAYLOAD_HASH = "x-amz-content-sha256"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
UNKNOWN_KEY = "The security token included in the request is invalid."
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)


def verify(
    keys: KeyService,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    services: Collection[str],
    region: str | None,
    now: datetime | None = None,
) -> Principal:
    """The caller's key if the request carries a valid SigV4 signature by an active key.

    ``headers`` are every header received, in order, repeated names kept; ``services`` the
    signing names the called API answers to; ``region`` the one region accepted (None: any).
    """
    received: dict[str, list[str]] = {}
    for name, value in headers:
        received.setdefault(name.lower(), []).append(value)
    match = _parse(",".join(received.get("authorization", [])))
    amz_date = ",".join(received.get("x-amz-date", []))
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidSignature("X-Amz-Date header is missing or malformed") from None
    now = now or datetime.now(UTC)
    if abs((now - signed_at).total_seconds()) > MAX_SKEW_SECONDS:
        raise InvalidSignature(
            f"Signature expired: {amz_date} is more than 5 minutes from the server time "
            f"{now.strftime('%Y%m%dT%H%M%SZ')}"
        )
    _check_scope(match, amz_date, services, region)
    names = _signed_names(match["signed"], received)
    body_hash = _payload_hash(received, body)
    principal, secret = keys.by_access_key(match["akid"])
    if principal is None or secret is None:
        raise UnrecognizedClient(UNKNOWN_KEY)
    signer = SigV4Auth(Credentials(match["akid"], secret), match["service"], match["region"])
    request = AWSRequest(method=method, url=url, data=body)
    request.context["timestamp"] = amz_date
    signed = HTTPHeaders()
    for name in names:
        for value in received.get(name, [""]):
            signed[name] = value  # appends: repeated headers are joined with commas
    canonical = "\n".join(
        (
            method.upper(),
            quote(normalize_url_path(urlsplit(url).path), safe="/~"),
            signer.canonical_query_string(request),
            signer.canonical_headers(signed) + "\n",
            ";".join(names),
            body_hash,
        )
    )
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise InvalidSignature(_MISMATCH)
    return principal


def access_key_id(authorization: str) -> str:
    """The access key id a request's ``Authorization`` header (repeated ones joined with commas)
    names, if it is a well-formed SigV4 header: what can be checked before the body is read
    (the server refuses anything else without reading a body: ``api/server.py``)."""
    return _parse(authorization)["akid"]


def _parse(authorization: str) -> re.Match[str]:
    if not authorization:
        raise MissingAuthentication("Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization)
    if match is None:
        raise InvalidSignature("Authorization header is not an AWS Signature Version 4 header")
    return match


def _check_scope(match: re.Match[str], amz_date: str, services: Collection[str], region: str | None) -> None:
    """The credential scope names the request's date, the server's region and the API called."""
    if match["date"] != amz_date[:8]:
        raise InvalidSignature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{match['date']}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if region is not None and match["region"] != region:
        raise InvalidSignature(f"Credential should be scoped to a valid region, not '{match['region']}'.")
    if match["service"] not in services:
        wanted = " or ".join(f"'{service}'" for service in sorted(services))
        raise InvalidSignature(f"Credential should be scoped to correct service: {wanted}.")


def _signed_names(listed: str, received: dict[str, list[str]]) -> list[str]:
    """The signed header names, in the canonical form, holding every header AWS requires."""
    names = listed.split(";")
    if names != sorted(set(names)) or any(name != name.strip().lower() or not name for name in names):
        raise InvalidSignature("SignedHeaders must list lowercase header names, sorted, each once.")
    for name in (*ALWAYS_SIGNED, *(name for name in SIGNED_WHEN_SENT if name in received)):
        if name not in names:
            shown = "'Host' or ':authority'" if name == "host" else f"'{_title(name)}'"
            raise InvalidSignature(f"{shown} must be a 'SignedHeader' in the AWS Authorization.")
    return names


def _payload_hash(received: dict[str, list[str]], body: bytes) -> str:
    """The SHA-256 of the body received, which a client's ``x-amz-content-sha256`` must equal."""
    actual = hashlib.sha256(body).hexdigest()
    claimed = received.get(PAYLOAD_HASH)
    if claimed is None:
        return actual
    value = ",".join(claimed)
    if value == "UNSIGNED-PAYLOAD" or value.startswith("STREAMING-"):
        raise InvalidSignature(
            f"{value} is not accepted: sign the request body ({_title(PAYLOAD_HASH)} must be its SHA-256)."
        )
    if not hmac.compare_digest(value.encode(), actual.encode()):
        raise InvalidSignature(f"The provided '{PAYLOAD_HASH}' header does not match what was computed.")
    return actual


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))
