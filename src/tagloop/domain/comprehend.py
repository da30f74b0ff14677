"""Amazon Comprehend's vocabulary for predictions: the one place that spells its result keys.

Used where Comprehend is spoken: its API (ClassifyDocument), the output lines of a batch
classification job, the CLI's ``classify --json``, and the prediction log, which stores each
result as ClassifyDocument answers it. Pure: builds plain dicts, does no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tagloop.domain.aws_errors import aws_type
from tagloop.domain.records import Mode
from tagloop.errors import TagloopError

if TYPE_CHECKING:  # the record's module imports numpy; this one stays light for the CLI
    from tagloop.domain.predictions import Prediction

_MULTI_CLASS = Mode.MULTI_CLASS  # a module constant: looking a member up on its enum is slower


def result(prediction: Prediction) -> dict[str, Any]:
    """A classified text's result as ClassifyDocument answers it: ``{"Classes": [...]}``
    (multi-class) or ``{"Labels": [...]}`` (multi-label), each entry ``{"Name", "Score"}``,
    best first."""
    labels, scores, mode, error = prediction
    if error is not None:
        raise ValueError(f"a text that could not be classified has no result: {error}")
    # zip without strict=: the record's lists are built together, and the keyword costs about
    # 0.3 µs a call (this runs for every answered and every logged prediction)
    entries = [{"Name": name, "Score": score} for name, score in zip(labels, scores)]  # noqa: B905
    return {"Classes": entries} if mode is _MULTI_CLASS else {"Labels": entries}


def error_code(exc: TagloopError) -> str:
    """The name Comprehend gives this kind of error (its ``__type``, a batch line's
    ``ErrorCode``, an AWS SDK's ``Error.Code``). Every Comprehend error name is looked up here."""
    return aws_type(exc)


def client_error(exc: TagloopError) -> dict[str, Any]:
    """An error as an AWS SDK reports it (botocore's ``ClientError.response``):
    ``{"Error": {"Code", "Message"}}``; the CLI prints it for a text it cannot classify."""
    return {"Error": {"Code": error_code(exc), "Message": exc.message}}


def output_line(prediction: Prediction, file: str, line: int | None) -> dict[str, Any]:
    """One line of a batch classification job's output, as Comprehend writes it:
    ``{"File", "Line", "Classes" | "Labels"}``, or ``ErrorCode`` and ``ErrorMessage`` for a
    document that could not be classified. ``Line`` (from 0) is absent for one document per file."""
    record: dict[str, Any] = {"File": file}
    if line is not None:
        record["Line"] = line
    if prediction.error is not None:
        record["ErrorCode"] = error_code(prediction.error)
        record["ErrorMessage"] = prediction.error.message
    else:
        record.update(result(prediction))
    return record


def scored(stored: dict[str, Any]) -> tuple[Mode, list[tuple[str, float]]]:
    """A result as :func:`result` built it (e.g. read back from the prediction log): the
    mode it answers for and its ``(name, score)`` entries, best first."""
    if "Labels" in stored:
        return Mode.MULTI_LABEL, [(entry["Name"], entry["Score"]) for entry in stored["Labels"]]
    return _MULTI_CLASS, [(entry["Name"], entry["Score"]) for entry in stored.get("Classes") or []]
