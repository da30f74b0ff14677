"""Comprehend's names for tagloop's errors (what the Comprehend API and the batch output say);
every class's name is pinned with its HTTP answer in tests/api/test_errors.py."""

from __future__ import annotations

from tagloop import errors
from tagloop.domain.aws_errors import aws_type


def test_an_error_and_its_class_have_the_same_name():
    assert aws_type(errors.LimitExceeded("too long")) == aws_type(errors.LimitExceeded)
    assert aws_type(errors.LimitExceeded) == "TextSizeLimitExceededException"
    issue = errors.RowIssue(2, "empty text")
    assert aws_type(errors.DatasetInvalid("a.csv", [issue])) == "InvalidRequestException"


def test_a_class_without_a_name_of_its_own_has_its_nearest_ancestors():
    class Gone(errors.JobNotFound):
        pass

    class Odd(errors.TagloopError):
        pass

    assert aws_type(Gone("x")) == "JobNotFoundException"
    assert aws_type(errors.JobNotFound) == "JobNotFoundException"
    assert aws_type(errors.NotFound) == "ResourceNotFoundException"
    assert aws_type(Odd("x")) == "InternalServerException"
