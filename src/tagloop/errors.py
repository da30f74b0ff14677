"""The one exception tree of tagloop.

Every error a user can cause or see is a :class:`TagloopError`. A class says what went
wrong, nothing about a wire: each door maps the tree to its own answer (``api/errors.py``:
HTTP status and error type of the native API, status and ``__type`` of the Comprehend API;
``domain/aws_errors.py``: the ``__type`` names, which the batch output uses too; ``cli.py``:
one line on stderr and an exit status). Their lookups go by the class's MRO, so a subclass
without a row of its own answers as its parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class TagloopError(Exception):
    """Base of every error tagloop raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequest(TagloopError):
    """The request or its input is malformed; the caller must change it."""


class InvalidBody(InvalidRequest):
    """A request body that does not match its schema."""


class ValidationFailed(InvalidRequest):
    """A request member breaks its API model: type, required, length, range, enum or pattern
    (the Comprehend API's own checks, answered as AWS answers them)."""


class UnreadableBody(InvalidRequest):
    """A request body that cannot be decoded at all (not UTF-8 JSON, not CBOR, too deeply nested)."""


class ConfigurationError(TagloopError):
    """A setting has a value tagloop cannot work with."""


@dataclass(frozen=True)
class RowIssue:
    """One rejected row of an input file: where it is and why it was refused."""

    line: int
    reason: str
    member: str | None = None
    """The archive member (or query of an import profile) the line is in; None for a plain file."""

    def __str__(self) -> str:
        where = f"{self.member}, " if self.member else ""
        return f"{where}line {self.line}: {self.reason}"


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


class LocationNotAllowed(InvalidRequest):
    """A data location given through a network API that is outside the allowed data locations.

    One message for every refusal (missing, existing, a folder, another protocol), so the
    answer never tells whether a path exists.
    """


class ArchiveRefused(InvalidRequest):
    """An archive that is not read at all: a possible archive bomb (compression ratio, member
    count or unpacked size over the TAGLOOP_ARCHIVE_* limits), a member whose path would escape
    the extraction folder, or a link or device member. The message names the member."""


class LimitExceeded(InvalidRequest):
    """An input is larger than a configured limit; the message names the setting."""


class RequestTooLarge(LimitExceeded):
    """A request body over the limit on request bodies, refused before it is read."""


class NotFound(TagloopError):
    """A named resource (classifier, version, dataset) does not exist."""


class JobNotFound(NotFound):
    """No such job (Comprehend names this error apart from other missing resources)."""


class AlreadyExists(TagloopError):
    """A resource with that name exists already."""


class ResourceInUse(TagloopError):
    """The resource is busy or in a state that forbids the operation."""


class Conflict(ResourceInUse):
    """The request conflicts with the resource's current state: a review answer without a
    lease or given twice, a human loop name reused with other input."""


class RequestInProgress(ResourceInUse):
    """The same request (by its ClientRequestToken) is still being handled: try again shortly."""


class ResourceUnavailable(TagloopError):
    """The resource exists but cannot serve yet (e.g. a model still training)."""


class ServiceUnavailable(TagloopError):
    """A service tagloop depends on (its database, its object store) cannot be reached now;
    the same request may succeed later."""


class StorageFailed(TagloopError):
    """Reading or writing tagloop's own files failed (permission denied, disk full, a file
    gone from under it): a fault of the installation, not of the request."""


class ArtifactCorrupt(TagloopError):
    """A stored artifact does not match the hash recorded when it was written, or cannot be read.

    The message never says where the artifact is stored (it can reach API callers, e.g. in an
    endpoint's message); ``location`` does, for the server's log.
    """

    def __init__(self, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location


class ArtifactMissing(ArtifactCorrupt):
    """A stored artifact is gone from the artifact store (the store was damaged)."""


class TrainingFailed(TagloopError):
    """Training could not produce a model from valid input (e.g. no usable features)."""


class Stopped(TagloopError):
    """Work was stopped on request before it finished."""


class AuthenticationFailed(TagloopError):
    """The caller could not be identified: no credentials, or credentials that do not verify."""


class UnrecognizedClient(AuthenticationFailed):
    """A key (bearer secret or SigV4 access key) that does not exist or was revoked."""


class InvalidSignature(AuthenticationFailed):
    """A request signature that does not verify, or is too old."""


class MissingAuthentication(AuthenticationFailed):
    """A request with no credentials at all (or not in the form the door takes)."""


class AccessDenied(TagloopError):
    """Valid credentials whose scope does not allow the operation."""


class UnknownOperation(TagloopError):
    """An API operation tagloop does not know (or, on the native API, a path it has no route for)."""


class MethodNotAllowed(UnknownOperation):
    """A path tagloop has a route for, called with a method the route does not take."""

    def __init__(self, message: str, allowed: str = "") -> None:
        super().__init__(message)
        self.allowed = allowed  # the methods the path takes ("GET, POST"), for an Allow header


class Unexpected(TagloopError):
    """A failure no one foresaw (a bug): the door answers only that it happened and logs the
    traceback."""


def nearest(table: Mapping[type[TagloopError], T], error: TagloopError | type[TagloopError]) -> T:
    """``error``'s row in a door's ``table`` (an error or its class): its own class's, else its
    nearest ancestor's. Every table has a row for :class:`TagloopError`, in every error's MRO."""
    kind = error if isinstance(error, type) else type(error)
    for ancestor in kind.__mro__:
        if ancestor in table:
            return table[ancestor]
    return table[TagloopError]
