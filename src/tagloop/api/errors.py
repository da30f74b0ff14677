"""How the HTTP doors answer an error: one table, and the translation of library errors.

``ANSWERS`` maps each error class to its native answer (HTTP status and the ``type`` of
``{"error": {"type": ..., "message": ...}}``) and to the status the Comprehend API answers it
with; the Comprehend ``__type`` comes from :mod:`tagloop.domain.aws_errors` (the batch output
names errors too). Lookups go by the error's MRO: the most specific row wins, and
``TagloopError``'s row answers for a class without one of its own.

AWS answers client errors with 400, signature problems with 403 and its own faults with 5xx,
whatever the error; the native API says more with its status (401, 404, 409, 413, ...).

:func:`translate` turns what a library raises (SQLAlchemy, fsspec and the OS, botocore) into
the error a door answers, with a message that names no path and shows no traceback; the app's
exception handlers (``api/server.py``) use it for both doors.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

import botocore.exceptions
import sqlalchemy.exc
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from tagloop.domain.aws_errors import aws_type
from tagloop.errors import (
    AccessDenied,
    AlreadyExists,
    ArchiveRefused,
    AuthenticationFailed,
    Conflict,
    InvalidBody,
    InvalidRequest,
    InvalidSignature,
    JobNotFound,
    LimitExceeded,
    MethodNotAllowed,
    MissingAuthentication,
    NotFound,
    RequestInProgress,
    RequestTooLarge,
    ResourceInUse,
    ResourceUnavailable,
    ServiceUnavailable,
    Stopped,
    StorageFailed,
    TagloopError,
    TrainingFailed,
    Unexpected,
    UnknownOperation,
    UnreadableBody,
    ValidationFailed,
    nearest,
)


@dataclass(frozen=True)
class Answer:
    """How the HTTP doors answer one error class."""

    status: int  # native API status
    type: str  # native API error type
    aws_status: int  # Comprehend API status: 400 client error, 403 signature problem, 5xx server


ANSWERS: dict[type[TagloopError], Answer] = {
    TagloopError: Answer(500, "InternalServerException", 500),  # ConfigurationError, ArtifactCorrupt
    Unexpected: Answer(500, "InternalFailure", 500),
    StorageFailed: Answer(500, "InternalServerException", 500),
    ServiceUnavailable: Answer(503, "ServiceUnavailableException", 503),
    InvalidRequest: Answer(400, "InvalidRequestException", 400),  # DatasetInvalid
    ArchiveRefused: Answer(400, "InvalidRequestException", 400),  # import profiles: bombs, traversal
    InvalidBody: Answer(422, "InvalidRequestException", 400),
    ValidationFailed: Answer(400, "ValidationException", 400),
    UnreadableBody: Answer(400, "SerializationException", 400),
    LimitExceeded: Answer(413, "TextSizeLimitExceededException", 400),
    RequestTooLarge: Answer(413, "LimitExceeded", 400),
    TrainingFailed: Answer(400, "InvalidRequestException", 400),
    NotFound: Answer(404, "ResourceNotFoundException", 400),
    JobNotFound: Answer(404, "JobNotFoundException", 400),
    AlreadyExists: Answer(409, "ResourceInUseException", 400),
    ResourceInUse: Answer(409, "ResourceInUseException", 400),
    Conflict: Answer(409, "ConflictException", 400),
    RequestInProgress: Answer(429, "TooManyRequestsException", 400),  # boto3 retries it
    Stopped: Answer(409, "ResourceInUseException", 400),
    ResourceUnavailable: Answer(503, "ResourceUnavailableException", 400),
    AuthenticationFailed: Answer(401, "UnrecognizedClientException", 400),  # UnrecognizedClient
    MissingAuthentication: Answer(401, "UnrecognizedClientException", 403),
    InvalidSignature: Answer(401, "InvalidSignatureException", 403),
    AccessDenied: Answer(403, "AccessDeniedException", 400),
    UnknownOperation: Answer(404, "UnknownOperationException", 400),  # a path with no route
    MethodNotAllowed: Answer(405, "MethodNotAllowedException", 400),
}


def answer(error: TagloopError | type[TagloopError]) -> Answer:
    """The row of ``error`` (an error or its class): its own, else its nearest ancestor's."""
    return nearest(ANSWERS, error)


def native_error(error: TagloopError) -> JSONResponse:
    """``error`` in the native API's shape: ``{"error": {"type": ..., "message": ...}}``."""
    row = answer(error)
    headers = {"Allow": error.allowed} if isinstance(error, MethodNotAllowed) and error.allowed else None
    return JSONResponse(
        {"error": {"type": row.type, "message": error.message}}, status_code=row.status, headers=headers
    )


def comprehend_error(error: TagloopError) -> tuple[dict[str, str], int]:
    """``error`` as the Comprehend API answers it: the payload (``__type``, ``message``) and
    AWS's status; ``api/comprehend/transport.py`` encodes it in the protocol of the request."""
    return {"__type": aws_type(error), "message": error.message}, answer(error).aws_status


# what a library raises and the translation answers (the app registers a handler for each)
LIBRARY_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    sqlalchemy.exc.SQLAlchemyError,
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
)
_DATABASE_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
)
_STORE_DOWN = (
    botocore.exceptions.ConnectionError,  # no connection (endpoint, proxy, connect timeout)
    botocore.exceptions.HTTPClientError,  # a connection lost or timed out mid-request
    ConnectionError,  # the OS's, from any fsspec file system
    TimeoutError,
)
_OS_REASONS: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "a file is missing"),
    (PermissionError, "permission denied"),
    (IsADirectoryError, "a folder where a file was expected"),
    (NotADirectoryError, "a file where a folder was expected"),
)


def translate(exc: Exception) -> TagloopError:
    """``exc`` as the error a door answers: a :class:`TagloopError` as it is, a library's
    error translated, anything else :class:`Unexpected`.

    The messages never name a path or a host and never carry a traceback (the server logs
    those); what the user can cause is translated earlier, where the path is the user's own
    (``services/datasets.py``, ``services/batch.py``).
    """
    if isinstance(exc, TagloopError):
        return exc
    if isinstance(exc, _DATABASE_DOWN):
        return ServiceUnavailable("the database is unavailable; try again later")
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        return Unexpected("internal server error (database)")
    if isinstance(exc, _STORE_DOWN):
        return ServiceUnavailable("the file store is unavailable; try again later")
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code") or "an error"
        return StorageFailed(f"the object store refused a request: {code}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return StorageFailed("the object store refused a request: no credentials")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return StorageFailed(f"the object store failed: {type(exc).__name__}")
    if isinstance(exc, OSError):
        return StorageFailed(f"reading or writing tagloop's files failed: {_os_reason(exc)}")
    return Unexpected("internal server error")


def _os_reason(exc: OSError) -> str:
    for kind, reason in _OS_REASONS:
        if isinstance(exc, kind):
            return reason
    if exc.errno is not None and exc.errno in errno.errorcode:
        return os.strerror(exc.errno).lower()
    return "input/output error"


def from_http_exception(exc: HTTPException, method: str, path: str) -> TagloopError:
    """What Starlette's router (no route, wrong method) or FastAPI raises as an HTTPException."""
    detail = str(exc.detail)
    if exc.status_code == 404:
        return UnknownOperation(f"no route for {method} {path}")
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        suffix = f" (it takes {allowed})" if allowed else ""
        return MethodNotAllowed(f"{method} is not allowed on {path}{suffix}", allowed=allowed)
    if exc.status_code == 401:
        return AuthenticationFailed(detail)
    if exc.status_code == 403:
        return AccessDenied(detail)
    if exc.status_code == 413:
        return RequestTooLarge(detail)
    if exc.status_code < 500:
        return InvalidRequest(detail)
    return Unexpected("internal server error")
