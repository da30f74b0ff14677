"""The one table of the HTTP doors: every error class answers with a status and both type
names, pinned here so that a new class (or a changed answer) is a decision, not an accident;
and the translation of library errors, which never shows a path, a host or a traceback."""

from __future__ import annotations

import importlib
import pkgutil

import botocore.exceptions
import pytest
import sqlalchemy
from starlette.exceptions import HTTPException

import tagloop
from tagloop import errors
from tagloop.api.errors import ANSWERS, answer, comprehend_error, from_http_exception, native_error, translate
from tagloop.domain.aws_errors import AWS_TYPES, aws_type

ISE, IRE, RIU = "InternalServerException", "InvalidRequestException", "ResourceInUseException"
UCE, TSL = "UnrecognizedClientException", "TextSizeLimitExceededException"

# class name: (native status, native type, Comprehend status, Comprehend __type)
PINNED = {
    "TagloopError": (500, ISE, 500, ISE),
    "Unexpected": (500, "InternalFailure", 500, ISE),
    "ConfigurationError": (500, ISE, 500, ISE),
    "ArtifactCorrupt": (500, ISE, 500, ISE),
    "ArtifactMissing": (500, ISE, 500, ISE),
    "StorageFailed": (500, ISE, 500, ISE),
    "ServiceUnavailable": (503, "ServiceUnavailableException", 503, "ServiceUnavailableException"),
    "InvalidRequest": (400, IRE, 400, IRE),
    "LocationNotAllowed": (400, IRE, 400, IRE),
    "ValidationFailed": (400, "ValidationException", 400, "ValidationException"),
    "UnreadableBody": (400, "SerializationException", 400, "SerializationException"),
    "InvalidBody": (422, IRE, 400, IRE),
    "DatasetInvalid": (400, IRE, 400, IRE),
    "ArchiveRefused": (400, IRE, 400, IRE),  # import profiles (services/archives.py)
    "InputUnreadable": (400, IRE, 400, IRE),  # services/batch.py
    "TrainingFailed": (400, IRE, 400, IRE),
    "LimitExceeded": (413, TSL, 400, TSL),
    "RequestTooLarge": (413, "LimitExceeded", 400, TSL),
    "NotFound": (404, "ResourceNotFoundException", 400, "ResourceNotFoundException"),
    "JobNotFound": (404, "JobNotFoundException", 400, "JobNotFoundException"),
    "AlreadyExists": (409, RIU, 400, RIU),
    "ResourceInUse": (409, RIU, 400, RIU),
    "Conflict": (409, "ConflictException", 400, RIU),
    "LeaseHeld": (409, RIU, 400, RIU),  # jobs/procrastinate_queue.py
    "Stopped": (409, RIU, 400, RIU),
    "RequestInProgress": (429, "TooManyRequestsException", 400, "TooManyRequestsException"),
    "ResourceUnavailable": (503, "ResourceUnavailableException", 400, "ResourceUnavailableException"),
    "AuthenticationFailed": (401, UCE, 400, UCE),
    "UnrecognizedClient": (401, UCE, 400, UCE),
    "MissingAuthentication": (401, UCE, 403, "MissingAuthenticationTokenException"),
    "InvalidSignature": (401, "InvalidSignatureException", 403, "InvalidSignatureException"),
    "AccessDenied": (403, "AccessDeniedException", 400, "AccessDeniedException"),
    "UnknownOperation": (404, "UnknownOperationException", 400, "UnknownOperationException"),
    "MethodNotAllowed": (405, "MethodNotAllowedException", 400, "UnknownOperationException"),
}


def every_error_class() -> dict[str, type[errors.TagloopError]]:
    """Every TagloopError subclass in tagloop's modules (each imported first; not the tests')."""
    for module in pkgutil.walk_packages(tagloop.__path__, "tagloop."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    found: dict[str, type[errors.TagloopError]] = {}
    waiting: list[type[errors.TagloopError]] = [errors.TagloopError]
    while waiting:
        kind = waiting.pop()
        waiting.extend(kind.__subclasses__())
        if kind.__module__.startswith("tagloop."):
            assert kind.__name__ not in found, f"two error classes named {kind.__name__}"
            found[kind.__name__] = kind
    return found


def test_every_error_class_has_a_pinned_answer_at_each_door():
    classes = every_error_class()
    assert set(classes) == set(PINNED), "decide how the doors answer a new error class (api/errors.py)"
    for name, kind in classes.items():
        row = answer(kind)
        assert (row.status, row.type, row.aws_status, aws_type(kind)) == PINNED[name], name
        assert 400 <= row.status <= 599 and row.type
        assert row.aws_status in (400, 403, 500, 503)  # AWS's statuses: client, signature, server


def test_the_tables_name_only_error_classes_and_answers_go_by_mro():
    assert all(issubclass(kind, errors.TagloopError) for kind in [*ANSWERS, *AWS_TYPES])

    class Newcomer(errors.NotFound):
        pass

    assert answer(Newcomer("x")) == answer(errors.NotFound)  # the nearest ancestor's row
    assert aws_type(Newcomer("x")) == "ResourceNotFoundException"


def test_the_shapes_of_one_error():
    error = errors.JobNotFound("no document classification job 'x'")
    response = native_error(error)
    assert response.status_code == 404
    assert (
        response.body
        == b'{"error":{"type":"JobNotFoundException","message":"no document classification job \'x\'"}}'
    )
    payload, status = comprehend_error(error)
    assert (payload, status) == ({"__type": "JobNotFoundException", "message": error.message}, 400)
    refused = native_error(errors.MethodNotAllowed("GET is not allowed", allowed="POST"))
    assert (refused.status_code, refused.headers["allow"]) == (405, "POST")


def test_a_database_that_cannot_be_reached_is_unavailable_without_its_address():
    engine = sqlalchemy.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/secretdb")
    with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
        engine.connect()
    error = translate(caught.value)
    assert isinstance(error, errors.ServiceUnavailable)
    assert answer(error).status == 503
    assert "127.0.0.1" not in error.message and "secretdb" not in error.message
    other = translate(sqlalchemy.exc.IntegrityError("INSERT ...", {}, Exception("duplicate key")))
    assert isinstance(other, errors.Unexpected) and "INSERT" not in other.message


def test_file_errors_name_no_path(tmp_path):
    hidden = tmp_path / "secret-folder" / "model.npz"
    with pytest.raises(FileNotFoundError) as missing:
        hidden.read_bytes()
    no_space = OSError(28, "No space left on device", str(hidden))
    for exc, reason in (
        (missing.value, "a file is missing"),
        (PermissionError(13, "Permission denied", str(hidden)), "permission denied"),
        (FileNotFoundError(str(hidden)), "a file is missing"),  # how fsspec raises it: the path only
        (no_space, "no space left on device"),
        (OSError("something odd"), "input/output error"),
    ):
        error = translate(exc)
        assert isinstance(error, errors.StorageFailed), exc
        assert error.message.endswith(reason), error.message
        assert "secret-folder" not in error.message and str(tmp_path) not in error.message
        assert answer(error).status == 500
    assert isinstance(translate(ConnectionRefusedError(111, "Connection refused")), errors.ServiceUnavailable)


def test_object_store_errors():
    unreachable = botocore.exceptions.EndpointConnectionError(endpoint_url="http://10.1.2.3:9000/bucket")
    assert isinstance(translate(unreachable), errors.ServiceUnavailable)
    assert "10.1.2.3" not in translate(unreachable).message
    denied = botocore.exceptions.ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "Access Denied to s3://bucket/secret/key"}}, "GetObject"
    )
    assert translate(denied).message == "the object store refused a request: AccessDenied"
    assert isinstance(translate(botocore.exceptions.NoCredentialsError()), errors.StorageFailed)


def test_tagloop_errors_pass_and_anything_else_is_unexpected():
    error = errors.NotFound("no endpoint 'x'")
    assert translate(error) is error
    unexpected = translate(KeyError("/srv/tagloop/secret"))
    assert isinstance(unexpected, errors.Unexpected)
    assert unexpected.message == "internal server error"


@pytest.mark.parametrize(
    ("status", "headers", "expected", "message"),
    [
        (404, None, errors.UnknownOperation, "no route for GET /v2/nothing"),
        (
            405,
            {"Allow": "POST"},
            errors.MethodNotAllowed,
            "GET is not allowed on /v2/nothing (it takes POST)",
        ),
        (401, None, errors.AuthenticationFailed, "detail"),
        (403, None, errors.AccessDenied, "detail"),
        (413, None, errors.RequestTooLarge, "detail"),
        (400, None, errors.InvalidRequest, "detail"),
        (502, None, errors.Unexpected, "internal server error"),
    ],
)
def test_http_exceptions_become_errors(status, headers, expected, message):
    error = from_http_exception(HTTPException(status, "detail", headers), "GET", "/v2/nothing")
    assert type(error) is expected
    assert error.message == message
