"""The one exception tree of tagloop.

Every error a user can cause or see is a :class:`TagloopError`. Each class knows the HTTP
status and the Amazon Comprehend ``__type`` it maps to, so the CLI, the native API and the
Comprehend-compatible API translate errors at their boundary without knowing every case.
"""

from __future__ import annotations

from dataclasses import dataclass


class TagloopError(Exception):
    """Base of every error tagloop raises on purpose."""

    http_status: int = 500
    aws_type: str = "InternalServerException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequest(TagloopError):
    """The request or its input is malformed; the caller must change it."""

    http_status = 400
    aws_type = "InvalidRequestException"


class InvalidBody(InvalidRequest):
    """A request body that does not match its schema (422, as for any validated body)."""

    http_status = 422


class ValidationFailed(InvalidRequest):
    """A request member breaks its API model: type, required, length, range, enum or pattern
    (the Comprehend API's own checks, answered as AWS answers them)."""

    http_status = 400
    aws_type = "ValidationException"


class UnreadableBody(InvalidRequest):
    """A request body that cannot be decoded at all (not UTF-8 JSON, not CBOR, too deeply nested)."""

    http_status = 400
    aws_type = "SerializationException"


class ConfigurationError(TagloopError):
    """A setting has a value tagloop cannot work with."""

    http_status = 500
    aws_type = "InternalServerException"


@dataclass(frozen=True)
class RowIssue:
    """One rejected row of an input file: where it is and why it was refused."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class DatasetInvalid(InvalidRequest):
    """An input file has rejected rows or violates a dataset-wide limit.

    ``issues`` lists every rejected row (line number and reason); nothing was written.
    """

    def __init__(self, source: str, issues: list[RowIssue], problems: list[str] | None = None) -> None:
        self.source = source
        self.issues = issues
        self.problems = problems or []
        parts = []
        if issues:
            parts.append(f"{len(issues)} row{'s' if len(issues) != 1 else ''} rejected")
        parts.extend(self.problems)
        head = f"{source}: " + "; ".join(parts)
        shown = "; ".join(str(issue) for issue in issues[:5])
        if shown:
            head += f" ({shown}{'; ...' if len(issues) > 5 else ''})"
        super().__init__(head)


class LimitExceeded(InvalidRequest):
    """An input is larger than a configured limit; the message names the setting."""

    http_status = 413
    aws_type = "TextSizeLimitExceededException"


class NotFound(TagloopError):
    """A named resource (classifier, version, dataset) does not exist."""

    http_status = 404
    aws_type = "ResourceNotFoundException"


class JobNotFound(NotFound):
    """No such job (Comprehend names this error apart from other missing resources)."""

    aws_type = "JobNotFoundException"


class AlreadyExists(TagloopError):
    """A resource with that name exists already."""

    http_status = 409
    aws_type = "ResourceInUseException"


class ResourceInUse(TagloopError):
    """The resource is busy or in a state that forbids the operation."""

    http_status = 409
    aws_type = "ResourceInUseException"


class ResourceUnavailable(TagloopError):
    """The resource exists but cannot serve yet (e.g. a model still training)."""

    http_status = 503
    aws_type = "ResourceUnavailableException"


class ArtifactCorrupt(TagloopError):
    """A stored artifact does not match the hash recorded when it was written."""

    http_status = 500
    aws_type = "InternalServerException"


class TrainingFailed(TagloopError):
    """Training could not produce a model from valid input (e.g. no usable features)."""

    http_status = 400
    aws_type = "InvalidRequestException"


class Stopped(TagloopError):
    """Work was stopped on request before it finished."""

    http_status = 409
    aws_type = "ResourceInUseException"


class UnrecognizedClient(TagloopError):
    """An access key that does not exist or was revoked (AWS Signature V4)."""

    http_status = 400
    aws_type = "UnrecognizedClientException"


class InvalidSignature(TagloopError):
    """A request signature that does not verify, or is too old."""

    http_status = 403
    aws_type = "InvalidSignatureException"


class MissingAuthentication(TagloopError):
    """A request with no credentials at all."""

    http_status = 403
    aws_type = "MissingAuthenticationTokenException"


class AccessDenied(TagloopError):
    """Valid credentials whose scope does not allow the operation."""

    http_status = 400
    aws_type = "AccessDeniedException"


class UnknownOperation(TagloopError):
    """An API operation tagloop does not know."""

    http_status = 400
    aws_type = "UnknownOperationException"
