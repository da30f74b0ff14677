"""AWS Signature Version 4 verification of incoming requests, with botocore's own signer.

The canonical request is rebuilt from what arrived (method, path, query, the signed headers
with their received values, the body) and signed again with the key's secret; the result
must equal the client's signature (constant-time comparison) and the request date must be
within five minutes of now.
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tagloop.errors import InvalidSignature, MissingAuthentication, UnrecognizedClient
from tagloop.services.keys import KeyService, Principal

MAX_SKEW_SECONDS = 300
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


def verify(
    keys: KeyService, method: str, url: str, headers: dict[str, str], body: bytes, now: datetime | None = None
) -> Principal:
    """The caller's key if the request carries a valid SigV4 signature by an active key."""
    header = headers.get("authorization", "")
    if not header:
        raise MissingAuthentication("Missing Authentication Token")
    match = _AUTHORIZATION.match(header)
    if match is None:
        raise InvalidSignature("Authorization header is not an AWS Signature Version 4 header")
    amz_date = headers.get("x-amz-date", "")
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
    principal, secret = keys.by_access_key(match["akid"])
    if principal is None or secret is None:
        raise UnrecognizedClient("The security token included in the request is invalid.")
    names = match["signed"].split(";")
    if "host" not in names:
        raise InvalidSignature("the host header must be signed")
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: headers.get(name, "") for name in names}
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(match["akid"], secret), match["service"], match["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise InvalidSignature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return principal
