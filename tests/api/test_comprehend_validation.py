"""Comprehend inputs are checked against botocore's model of the API, as AWS checks them."""

from __future__ import annotations

import re
import sys
import unicodedata
from datetime import UTC, datetime

import botocore.session
import pytest

from tagloop.api.comprehend.input import (
    MAX_SHOWN_ERRORS,
    SAME_INPUT,
    SEPARATORS,
    has_input_shape,
    java_pattern,
    validate,
)
from tagloop.api.comprehend.operations import OPERATIONS
from tagloop.errors import ValidationFailed

ENDPOINT = "arn:aws:comprehend:us-east-1:123456789012:document-classifier-endpoint/desk"
CLASSIFIER = "arn:aws:comprehend:us-east-1:123456789012:document-classifier/desk"
ROLE = "arn:aws:iam::123456789012:role/comprehend"


def refused(operation: str, body: dict) -> str:
    with pytest.raises(ValidationFailed) as caught:  # ValidationException, 400 (test_malformed_input.py)
        validate(operation, body)
    return caught.value.message


def training(**changes) -> dict:
    body = {
        "DocumentClassifierName": "desk",
        "DataAccessRoleArn": ROLE,
        "InputDataConfig": {"S3Uri": "s3://bucket/train.csv"},
        "LanguageCode": "en",
    }
    return body | changes


def test_every_operation_tagloop_answers_has_an_input_shape():
    assert sorted(op for op in OPERATIONS if not has_input_shape(op)) == []


def test_every_pattern_of_those_operations_compiles():
    """The model's patterns are Java regular expressions: each one tagloop's operations can meet
    translates to Python's (else it would go unchecked)."""
    model = botocore.session.get_session().get_service_model("comprehend")
    patterns: set[str] = set()

    def walk(shape, seen: set[str]) -> None:
        if shape.name in seen:
            return
        seen.add(shape.name)
        if "pattern" in shape.metadata:
            patterns.add(shape.metadata["pattern"])
        children = {
            "structure": lambda: list(shape.members.values()),
            "list": lambda: [shape.member],
            "map": lambda: [shape.key, shape.value],
        }.get(shape.type_name, list)()
        for child in children:
            walk(child, seen)

    for operation in OPERATIONS:
        walk(model.operation_model(SAME_INPUT.get(operation, operation)).input_shape, set())
    assert len(patterns) > 5
    assert [pattern for pattern in patterns if java_pattern(pattern) is None] == []


def test_the_separators_are_unicodes_z_categories():
    separator = re.compile(f"[{SEPARATORS}]")
    chars = [chr(code) for code in range(sys.maxunicode + 1)]
    assert {char for char in chars if separator.fullmatch(char)} == {
        char for char in chars if unicodedata.category(char)[0] == "Z"
    }
    job_id = java_pattern(r"^([\p{L}\p{Z}\p{N}_.:/=+\-%@]*)$")
    assert job_id is not None and job_id.fullmatch("job_1 ünïcode ٣ a.b:c/d=e+f-g%h@i")
    assert not any(job_id.fullmatch(char) for char in "\t\x00\n#!")


def test_a_valid_request_passes_unchanged():
    body = training(Mode="MULTI_LABEL", Tags=[{"Key": "team", "Value": ""}])
    validate("CreateDocumentClassifier", body)
    assert body == training(Mode="MULTI_LABEL", Tags=[{"Key": "team", "Value": ""}])
    validate("ClassifyDocument", {"Text": "my vpn keeps dropping", "EndpointArn": ENDPOINT})
    validate("ListEndpoints", {})


def test_enums_are_refused_in_aws_words():
    assert refused("CreateDocumentClassifier", training(Mode="SINGLE")) == (
        "1 validation error detected: Value 'SINGLE' at 'mode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [MULTI_CLASS, MULTI_LABEL]"
    )


def test_required_members_and_nested_paths():
    message = refused("CreateDocumentClassifier", {"DocumentClassifierName": "desk", "InputDataConfig": {}})
    assert message.startswith("2 validation errors detected: ")
    assert (
        "Value null at 'dataAccessRoleArn' failed to satisfy constraint: Member must not be null" in message
    )
    assert "Value null at 'languageCode'" in message
    message = refused(
        "StartDocumentClassificationJob",
        {"DataAccessRoleArn": ROLE, "InputDataConfig": {"S3Uri": 5}, "OutputDataConfig": {"S3Uri": "/o"}},
    )
    assert message == (
        "1 validation error detected: Value '5' at 'inputDataConfig.s3Uri' failed to satisfy "
        "constraint: Member must be a string"
    )
    assert "at 'tags.2.member.key'" in refused("CreateEndpoint", {
        "EndpointName": "e", "DesiredInferenceUnits": 1, "Tags": [{"Key": "a"}, {"Value": "b"}]
    })  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "body", "needle"),
    [
        (
            "ListEndpoints",
            {"Filter": "IN_SERVICE"},
            "at 'filter' failed to satisfy constraint: Member must be a",
        ),
        ("ListEndpoints", {"Filter": [1]}, "Value '<list>' at 'filter'"),
        (
            "ListEndpoints",
            {"NextToken": 5},
            "at 'nextToken' failed to satisfy constraint: Member must be a string",
        ),
        ("ListEndpoints", {"NextToken": ""}, "Member must have length greater than or equal to 1"),
        ("ListEndpoints", {"MaxResults": "abc"}, "Value 'abc' at 'maxResults'"),
        ("ListEndpoints", {"MaxResults": float("nan")}, "Member must be an integer"),
        ("ListEndpoints", {"MaxResults": 5.0}, "Member must be an integer"),
        ("ListEndpoints", {"MaxResults": True}, "Member must be an integer"),
        ("ListEndpoints", {"MaxResults": 0}, "Member must have value greater than or equal to 1"),
        ("ListEndpoints", {"MaxResults": 501}, "Member must have value less than or equal to 500"),
        ("ListEndpoints", {"Filter": {"CreationTimeAfter": "yesterday"}}, "at 'filter.creationTimeAfter'"),
        ("ListEndpoints", {"Filter": {"CreationTimeAfter": float("inf")}}, "be a timestamp"),
        ("ListEndpoints", {"Filter": {"Status": "ON"}}, "at 'filter.status'"),
        (
            "CreateEndpoint",
            {"EndpointName": "e", "DesiredInferenceUnits": "abc"},
            "at 'desiredInferenceUnits'",
        ),
        (
            "CreateEndpoint",
            {"EndpointName": "e", "DesiredInferenceUnits": 10**20},
            "less than or equal to 2147483647",
        ),
        ("CreateEndpoint", {"EndpointName": "e", "DesiredInferenceUnits": 0}, "greater than or equal to 1"),
        ("CreateEndpoint", {"EndpointName": "-e", "DesiredInferenceUnits": 1}, "regular expression pattern"),
        (
            "CreateEndpoint",
            {"EndpointName": "e" * 41, "DesiredInferenceUnits": 1},
            "less than or equal to 40",
        ),
        ("CreateDocumentClassifier", training(InputDataConfig="s3://b/x"), "at 'inputDataConfig'"),
        ("CreateDocumentClassifier", training(VersionName=5), "at 'versionName'"),
        ("CreateDocumentClassifier", training(VersionName=["v"]), "at 'versionName'"),
        ("CreateDocumentClassifier", training(Mode=["MULTI_CLASS"]), "at 'mode'"),
        (
            "CreateDocumentClassifier",
            training(InputDataConfig={"S3Uri": "/d", "LabelDelimiter": 5}),
            "labelDelimiter",
        ),
        (
            "CreateDocumentClassifier",
            training(InputDataConfig={"S3Uri": "/d", "LabelDelimiter": "ab"}),
            "length",
        ),
        (
            "CreateDocumentClassifier",
            training(InputDataConfig={"S3Uri": "/d", "LabelDelimiter": "a"}),
            "pattern",
        ),
        ("CreateDocumentClassifier", training(InputDataConfig={"S3Uri": "/a\x00b"}), "inputDataConfig.s3Uri"),
        ("CreateDocumentClassifier", training(InputDataConfig={"S3Uri": "s3://b/" + "x" * 1024}), "1024"),
        ("CreateDocumentClassifier", training(DataAccessRoleArn="role"), "at 'dataAccessRoleArn'"),
        ("DescribeDocumentClassificationJob", {"JobId": "a\x00"}, "at 'jobId'"),
        ("StopDocumentClassificationJob", {}, "Value null at 'jobId'"),
        ("StopDocumentClassificationJob", {"JobId": ["x"]}, "at 'jobId'"),
        ("ClassifyDocument", {"EndpointArn": "desk"}, "at 'endpointArn'"),
        (
            "ClassifyDocument",
            {"EndpointArn": ENDPOINT, "Bytes": "not base64!"},
            "be base64-encoded binary data",
        ),
        ("ClassifyDocument", {"EndpointArn": ENDPOINT, "Bytes": ""}, "at 'bytes'"),
        ("ClassifyDocument", {"EndpointArn": ENDPOINT, "Bytes": 5}, "be binary data"),
    ],
)
def test_wrong_inputs_are_refused(operation, body, needle):
    assert needle in refused(operation, body)


def test_what_the_protocols_carry_is_accepted():
    """CBOR brings timestamps as datetimes (tag 1) and blobs as bytes; JSON 1.1 as epoch
    seconds and base64 text."""
    validate("ListEndpoints", {"Filter": {"CreationTimeAfter": datetime(2026, 1, 1, tzinfo=UTC)}})
    validate("ListEndpoints", {"Filter": {"CreationTimeAfter": 1767225600, "CreationTimeBefore": 1.5e9}})
    validate("ClassifyDocument", {"EndpointArn": ENDPOINT, "Bytes": b"%PDF"})
    validate("ClassifyDocument", {"EndpointArn": ENDPOINT, "Bytes": "JVBERg=="})
    validate("CreateEndpoint", {"EndpointName": "e", "DesiredInferenceUnits": 2**31 - 1})


def test_s3_uri_takes_tagloops_locations():
    """tagloop reads local files and fsspec URLs (the allowlist decides which): the model's
    s3:// pattern does not apply, control characters still do not pass."""
    for uri in ("s3://bucket/train.csv", "file:///srv/inbox/train.csv", "/srv/inbox/train.csv"):
        validate("CreateDocumentClassifier", training(InputDataConfig={"S3Uri": uri, "TestS3Uri": uri}))
    assert "inputDataConfig.testS3Uri" in refused(
        "CreateDocumentClassifier", training(InputDataConfig={"S3Uri": "/a", "TestS3Uri": "/a\nb"})
    )


def test_unknown_members_are_ignored_and_nulls_are_absent():
    """As AWS services do: a newer SDK's members pass; null means absent (and leaves the body)."""
    body = training(Mode=None, VersionName=None, FutureMember={"x": [1]})
    validate("CreateDocumentClassifier", body)
    assert "Mode" not in body and "VersionName" not in body and body["FutureMember"] == {"x": [1]}
    assert "Value null at 'endpointArn'" in refused("ClassifyDocument", {"EndpointArn": None, "Text": "x"})


def test_sensitive_values_are_not_echoed_and_long_ones_are_cut():
    message = refused("ClassifyDocument", {"EndpointArn": ENDPOINT, "Text": ""})
    assert message == (
        "1 validation error detected: Value at 'text' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )
    message = refused("CreateEndpoint", {"EndpointName": "e" * 5000, "DesiredInferenceUnits": 1})
    assert len(message) < 400 and "e" * 100 + "..." in message


def test_many_errors_are_counted_and_the_first_ones_shown():
    body = {"Tags": [{"Key": 1}] * 30}
    message = refused("CreateEndpoint", body)
    assert message.startswith("32 validation errors detected: ")
    assert message.count("failed to satisfy constraint") == MAX_SHOWN_ERRORS and message.endswith("; ...")


def test_unknown_operations_are_left_to_the_dispatcher():
    validate("DetectSentiment2", {"Text": 5})
