"""Records and vocabularies (domain/records.py) and resource names (domain/names.py)."""

from __future__ import annotations

import dataclasses

import pytest

from tagloop.domain.names import MAX_NAME, check_name
from tagloop.domain.records import JobStatus, LabelledText, Mode
from tagloop.errors import InvalidRequest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("multi-class", Mode.MULTI_CLASS),
        ("MULTI_CLASS", Mode.MULTI_CLASS),
        ("Multi-Class", Mode.MULTI_CLASS),
        ("multi_class", Mode.MULTI_CLASS),
        ("  multi-class \n", Mode.MULTI_CLASS),
        ("multi-label", Mode.MULTI_LABEL),
        ("MULTI_LABEL", Mode.MULTI_LABEL),
        ("multi_label", Mode.MULTI_LABEL),
        ("MULTI-LABEL", Mode.MULTI_LABEL),
    ],
)
def test_mode_parse_accepts_spellings(value, expected):
    assert Mode.parse(value) is expected


@pytest.mark.parametrize("value", ["", "   ", "binary", "multiclass", "multi label", "MULTI__CLASS", "label"])
def test_mode_parse_rejects_junk_with_invalid_request(value):
    with pytest.raises(InvalidRequest) as caught:
        Mode.parse(value)
    message = str(caught.value)
    assert repr(value) in message
    assert "multi-class" in message
    assert "multi-label" in message


def test_mode_values_are_comprehend_names():
    assert Mode.MULTI_CLASS.value == "MULTI_CLASS"
    assert Mode.MULTI_LABEL.value == "MULTI_LABEL"
    assert Mode.parse(Mode.MULTI_LABEL.value) is Mode.MULTI_LABEL


def test_labelled_text_is_immutable():
    row = LabelledText("some text", ("A",), 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.text = "other"  # type: ignore[misc]
    assert row == LabelledText("some text", ("A",), 3)


def test_job_status_is_final():
    final = {status for status in JobStatus if status.is_final}
    assert final == {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED}


# ---- names -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["a", "A", "7", "service-desk", "a-1", "a--b", "Model-V2-final", "x" * MAX_NAME, "a" + "-" * 61 + "b"],
)
def test_check_name_accepts_valid_names_and_returns_them(name):
    assert check_name("classifier", name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-a",
        "a-",
        "-",
        "a_b",
        "a b",
        "a.b",
        "a/b",
        "é",
        "name!",
        " a",
        "a ",
        "x" * (MAX_NAME + 1),
    ],
)
def test_check_name_rejects_invalid_names(name):
    with pytest.raises(InvalidRequest) as caught:
        check_name("version", name)
    message = str(caught.value)
    assert message.startswith("invalid version name")
    assert repr(name) in message
    assert str(MAX_NAME) in message


@pytest.mark.parametrize("name", ["abc\n", "service-desk\n"])
def test_check_name_rejects_a_trailing_newline(name):
    # ``$`` in the pattern also matches just before a final "\n": a name must match in full.
    with pytest.raises(InvalidRequest):
        check_name("classifier", name)
