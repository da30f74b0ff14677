"""How the SageMaker control plane (JSON 1.1) and the A2I runtime (rest-json) answer errors:
AWS's names and statuses for each error class, looked up by the error's MRO.

SageMaker answers ``{"__type": "ResourceNotFound", "Message": ...}`` with 400 for client errors;
A2I answers the name in the ``x-amzn-ErrorType`` header and ``{"Message": ...}`` with the
status its model gives each error (404 not found, 409 conflict, ...). Signature problems are
403 at both.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from tagloop.errors import (
    AccessDenied,
    AlreadyExists,
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    InvalidSignature,
    LimitExceeded,
    MethodNotAllowed,
    MissingAuthentication,
    NotFound,
    RequestTooLarge,
    ResourceInUse,
    ResourceUnavailable,
    ServiceUnavailable,
    Stopped,
    TagloopError,
    UnknownOperation,
    UnreadableBody,
    UnrecognizedClient,
    nearest,
)

VALIDATION = "ValidationException"
_AUTH: dict[type[TagloopError], tuple[str, int]] = {
    AuthenticationFailed: ("UnrecognizedClientException", 403),
    UnrecognizedClient: ("UnrecognizedClientException", 403),
    InvalidSignature: ("InvalidSignatureException", 403),
    MissingAuthentication: ("MissingAuthenticationTokenException", 403),
    AccessDenied: ("AccessDeniedException", 403),
}

SAGEMAKER: dict[type[TagloopError], tuple[str, int]] = {
    TagloopError: ("InternalFailure", 500),
    ServiceUnavailable: ("ServiceUnavailable", 503),
    ResourceUnavailable: ("ServiceUnavailable", 503),
    InvalidRequest: (VALIDATION, 400),
    UnreadableBody: ("SerializationException", 400),
    LimitExceeded: (VALIDATION, 400),
    RequestTooLarge: ("RequestEntityTooLargeException", 413),
    NotFound: ("ResourceNotFound", 400),
    AlreadyExists: ("ResourceInUse", 400),
    ResourceInUse: ("ResourceInUse", 400),
    Stopped: ("ResourceInUse", 400),
    Conflict: ("ConflictException", 400),
    UnknownOperation: ("UnknownOperationException", 400),
    **_AUTH,
}

A2I: dict[type[TagloopError], tuple[str, int]] = {
    TagloopError: ("InternalServerException", 500),
    ServiceUnavailable: ("ServiceUnavailableException", 503),
    ResourceUnavailable: ("ServiceUnavailableException", 503),
    InvalidRequest: (VALIDATION, 400),
    UnreadableBody: (VALIDATION, 400),
    LimitExceeded: (VALIDATION, 400),
    RequestTooLarge: ("RequestEntityTooLargeException", 413),
    NotFound: ("ResourceNotFoundException", 404),
    AlreadyExists: ("ConflictException", 409),
    ResourceInUse: ("ConflictException", 409),
    Stopped: ("ConflictException", 409),
    Conflict: ("ConflictException", 409),
    UnknownOperation: ("UnknownOperationException", 404),
    MethodNotAllowed: ("UnknownOperationException", 405),
    **_AUTH,
}


def sagemaker_error(error: TagloopError) -> Response:
    name, status = nearest(SAGEMAKER, error)
    body = json.dumps({"__type": name, "Message": error.message})
    return Response(body, status_code=status, media_type="application/x-amz-json-1.1")


def a2i_error(error: TagloopError) -> Response:
    name, status = nearest(A2I, error)
    return Response(
        json.dumps({"Message": error.message}),
        status_code=status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": name},
    )
