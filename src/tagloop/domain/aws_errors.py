"""Amazon Comprehend's name (``__type``, a batch output line's ``ErrorCode``) for each error.

Pure: the Comprehend API (``api/errors.py``, which adds AWS's statuses) and the batch writer
(``services/batch.py``) both read it. The lookup goes by the error's MRO: a class without a
row answers as its nearest ancestor with one, so every :class:`TagloopError` has a name.
"""

from __future__ import annotations

from tagloop.errors import (
    AccessDenied,
    AlreadyExists,
    AuthenticationFailed,
    InvalidRequest,
    InvalidSignature,
    JobNotFound,
    LimitExceeded,
    MissingAuthentication,
    NotFound,
    RequestInProgress,
    ResourceInUse,
    ResourceUnavailable,
    ServiceUnavailable,
    Stopped,
    TagloopError,
    TrainingFailed,
    UnknownOperation,
    UnreadableBody,
    UnrecognizedClient,
    ValidationFailed,
    nearest,
)

INTERNAL = "InternalServerException"

AWS_TYPES: dict[type[TagloopError], str] = {
    TagloopError: INTERNAL,  # ConfigurationError, StorageFailed, ArtifactCorrupt, Unexpected
    InvalidRequest: "InvalidRequestException",  # InvalidBody, DatasetInvalid, LocationNotAllowed
    ValidationFailed: "ValidationException",
    UnreadableBody: "SerializationException",
    LimitExceeded: "TextSizeLimitExceededException",  # RequestTooLarge
    TrainingFailed: "InvalidRequestException",
    NotFound: "ResourceNotFoundException",
    JobNotFound: "JobNotFoundException",
    ResourceInUse: "ResourceInUseException",
    AlreadyExists: "ResourceInUseException",
    Stopped: "ResourceInUseException",
    RequestInProgress: "TooManyRequestsException",
    ResourceUnavailable: "ResourceUnavailableException",
    ServiceUnavailable: "ServiceUnavailableException",
    AuthenticationFailed: "UnrecognizedClientException",
    UnrecognizedClient: "UnrecognizedClientException",
    InvalidSignature: "InvalidSignatureException",
    MissingAuthentication: "MissingAuthenticationTokenException",
    AccessDenied: "AccessDeniedException",
    UnknownOperation: "UnknownOperationException",  # MethodNotAllowed
}


def aws_type(error: TagloopError | type[TagloopError]) -> str:
    """Comprehend's ``__type`` for ``error`` (an error or its class)."""
    return nearest(AWS_TYPES, error)
