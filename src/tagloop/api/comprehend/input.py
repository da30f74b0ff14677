"""AWS requests checked against the service's own API model before an operation runs:
Comprehend's, and SageMaker's and A2I's for the human-loop APIs (``api/a2i``).

The model is botocore's, the one boto3 builds its requests from, so a request may hold what
AWS says it may: member types, required members, lengths, value ranges, enums and patterns.
botocore's ``ParamValidator`` checks a client's parameters (types, required members and
minimums, not maximums, enums or patterns; it refuses unknown members and takes strings for
timestamps), so the server's side is written here: each operation's input shape is compiled
once into plain functions, and a failed check is answered as AWS answers it,
``ValidationException`` with "1 validation error detected: Value 'x' at 'mode' failed to
satisfy constraint: Member must satisfy enum value set: [MULTI_CLASS, MULTI_LABEL]".

Where tagloop departs from the model, on purpose:

- ``S3Uri`` members: tagloop reads local paths and fsspec URLs, not only ``s3://`` (which
  locations the API may use is the data-URL allowlist's call): any text without control
  characters.
- Members the model does not know are ignored, as AWS services ignore them, so that requests
  of a newer SDK still work; a member sent as null counts as absent, and is dropped from the
  body so that operations never see a None.
- Integers must fit the Java type the model names (integer: 32 bits, long: 64), as on AWS.
- Timestamps are epoch seconds (JSON 1.1) or CBOR tag 1, which cbor2 decodes to a datetime;
  blobs are base64 text (JSON 1.1) or a byte string (CBOR).
- Patterns are Java regular expressions: the few Java-only classes Comprehend's model uses
  are translated (``JAVA_CLASSES``); a pattern that still does not compile is not checked
  (the tests prove every pattern of tagloop's operations compiles).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import sys
import unicodedata
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from tagloop.errors import ValidationFailed

# Operations tagloop answers that botocore's model lacks, and the input shape they share
# with one it has.
SAME_INPUT = {"StopDocumentClassificationJob": "DescribeDocumentClassificationJob"}
# Shapes whose pattern tagloop replaces (see the module's docstring). A2I documents a
# lower-case pattern for human loop names, but AWS's own samples send mixed-case ones
# (``Comprehend-Text1700000000000``) and A2I takes them: letters, digits and inner hyphens.
REPLACED_PATTERNS = {
    "S3Uri": r"[^\x00-\x1f\x7f]+",
    "HumanLoopName": r"[a-zA-Z0-9](-*[a-zA-Z0-9])*",
}
COMPREHEND = "comprehend"
SEPARATORS = "\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # Unicode's Z categories
JAVA_CLASSES = {
    r"\p{L}\p{Z}\p{N}_": r"\w" + SEPARATORS,  # letters, numbers and the underscore are exactly \w
    r"\p{ASCII}": r"[\x00-\x7f]",
}
LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last second a timestamp may name
INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
MAX_SHOWN_ERRORS = 10
MAX_SHOWN_CHARS = 100

Check = Callable[[Any, str, list[str]], None]


def validate(operation: str, body: dict[str, Any], service: str = COMPREHEND) -> None:
    """Refuse ``body`` with :class:`ValidationFailed` unless it is a valid input of
    ``operation`` of ``service`` (botocore's name: ``comprehend``, ``sagemaker``,
    ``sagemaker-a2i-runtime``); members sent as null are removed from it. Operations without
    an input shape here (none that tagloop answers) are left to the dispatcher."""
    check = _operation_check(service, SAME_INPUT.get(operation, operation))
    if check is None:
        return
    errors: list[str] = []
    check(body, "", errors)
    if errors:
        count = len(errors)
        shown = "; ".join(errors[:MAX_SHOWN_ERRORS]) + ("; ..." if count > MAX_SHOWN_ERRORS else "")
        raise ValidationFailed(f"{count} validation error{'s' if count > 1 else ''} detected: {shown}")


def has_input_shape(operation: str, service: str = COMPREHEND) -> bool:
    return _operation_check(service, SAME_INPUT.get(operation, operation)) is not None


@cache
def service_model(service: str = COMPREHEND) -> Any:
    """botocore's model of ``service``, loaded once."""
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@cache
def _operation_check(service: str, operation: str) -> Check | None:
    model = service_model(service)
    if operation not in model.operation_names:
        return None
    shape = model.operation_model(operation).input_shape
    return _compile(shape) if shape is not None else None


@cache
def _other_ranges() -> str:
    """The code points of Unicode's C categories (control, format, surrogate, private use,
    unassigned) as the inside of a character class: Java's ``\\p{C}``."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] == "C":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(f"\\U{low:08x}" + (f"-\\U{high:08x}" if high > low else "") for low, high in ranges)


def java_pattern(pattern: str) -> re.Pattern[str] | None:
    """A Java regular expression of the model as a Python one (None if it cannot be)."""
    for java, python in JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    if r"\P{C}" in pattern:  # not in Unicode's C categories (flywheel labels)
        pattern = pattern.replace(r"\P{C}", f"[^{_other_ranges()}]")
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _wire_name(name: str) -> str:
    """Member names as AWS writes them in validation messages: lower camel case."""
    return name[:1].lower() + name[1:]


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    if isinstance(value, str):
        return repr(value[:MAX_SHOWN_CHARS] + ("..." if len(value) > MAX_SHOWN_CHARS else ""))
    if isinstance(value, int | float):
        text = str(value)
        return f"'{text[:MAX_SHOWN_CHARS]}{'...' if len(text) > MAX_SHOWN_CHARS else ''}'"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, bytes | bytearray):
        return f"'<{len(value)} bytes>'"
    return f"'<{type(value).__name__}>'"


def _failed(errors: list[str], value: Any, path: str, constraint: str, sensitive: bool) -> None:
    value_part = "Value" if sensitive and value is not None else f"Value {_shown(value)}"
    errors.append(f"{value_part} at '{path}' failed to satisfy constraint: Member must {constraint}")


def _compile(shape: Any) -> Check:
    kind = shape.type_name
    sensitive = bool(shape.metadata.get("sensitive"))
    compilers: dict[str, Callable[[Any, bool], Check]] = {
        "structure": _structure,
        "list": _list,
        "map": _map,
        "string": _string,
        "integer": _integer,
        "long": _integer,
        "float": _number,
        "double": _number,
        "boolean": _boolean,
        "timestamp": _timestamp,
        "blob": _blob,
    }
    if kind == "structure" and shape.is_document_type:
        return lambda value, path, errors: None  # free-form JSON: nothing to check
    return compilers[kind](shape, sensitive)


def _lengths(shape: Any) -> tuple[int | None, int | None]:
    return shape.metadata.get("min"), shape.metadata.get("max")


def _check_length(size: int, value: Any, path: str, errors: list[str], shape: Any, sensitive: bool) -> None:
    low, high = _lengths(shape)
    if low is not None and size < low:
        _failed(errors, value, path, f"have length greater than or equal to {low}", sensitive)
    elif high is not None and size > high:
        _failed(errors, value, path, f"have length less than or equal to {high}", sensitive)


def _structure(shape: Any, sensitive: bool) -> Check:
    required = tuple(shape.required_members)
    members = {name: (_compile(member), _wire_name(name)) for name, member in shape.members.items()}
    union = bool(shape.metadata.get("union"))

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not dict:
            _failed(errors, value, path or "input", "be a structure", sensitive)
            return
        for name in required:
            if value.get(name) is None:
                wire = _wire_name(name)
                _failed(errors, None, f"{path}.{wire}" if path else wire, "not be null", False)
        nulls = None
        for name, (member_check, wire) in members.items():
            item = value.get(name)
            if item is None:
                if name in value:
                    nulls = [*(nulls or []), name]
                continue
            member_check(item, f"{path}.{wire}" if path else wire, errors)
        for name in nulls or ():
            del value[name]
        if union and sum(1 for name in members if name in value) != 1:
            _failed(errors, value, path or "input", "have exactly one member set", sensitive)

    return check


def _list(shape: Any, sensitive: bool) -> Check:
    item_check = _compile(shape.member)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not list:
            _failed(errors, value, path, "be a list", sensitive)
            return
        _check_length(len(value), value, path, errors, shape, sensitive)
        for index, item in enumerate(value, start=1):
            item_path = f"{path}.{index}.member"
            if item is None:
                _failed(errors, None, item_path, "not be null", False)
            else:
                item_check(item, item_path, errors)

    return check


def _map(shape: Any, sensitive: bool) -> Check:
    key_check = _compile(shape.key)
    value_check = _compile(shape.value)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not dict:
            _failed(errors, value, path, "be a map", sensitive)
            return
        _check_length(len(value), value, path, errors, shape, sensitive)
        for key, item in value.items():
            key_check(key, f"{path}.key", errors)
            if item is None:
                _failed(errors, None, f"{path}.value", "not be null", False)
            else:
                value_check(item, f"{path}.value", errors)

    return check


def _string(shape: Any, sensitive: bool) -> Check:
    low, high = _lengths(shape)
    enum = frozenset(shape.enum) if shape.enum else None
    enum_text = f"satisfy enum value set: [{', '.join(shape.enum)}]" if shape.enum else ""
    pattern_text = REPLACED_PATTERNS.get(shape.name, shape.metadata.get("pattern"))
    pattern = java_pattern(pattern_text) if pattern_text else None

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not str:
            _failed(errors, value, path, "be a string", sensitive)
            return
        if enum is not None and value not in enum:
            _failed(errors, value, path, enum_text, sensitive)
            return
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            _check_length(len(value), value, path, errors, shape, sensitive)
        elif pattern is not None and pattern.fullmatch(value) is None:
            _failed(errors, value, path, f"satisfy regular expression pattern: {pattern_text}", sensitive)

    return check


def _integer(shape: Any, sensitive: bool) -> Check:
    floor, ceiling = INTEGER_RANGES[shape.type_name]
    low = max(shape.metadata.get("min", floor), floor)
    high = min(shape.metadata.get("max", ceiling), ceiling)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not int:
            _failed(errors, value, path, "be an integer", sensitive)
        elif value < low:
            _failed(errors, value, path, f"have value greater than or equal to {low}", sensitive)
        elif value > high:
            _failed(errors, value, path, f"have value less than or equal to {high}", sensitive)

    return check


def _number(shape: Any, sensitive: bool) -> Check:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")

    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) not in (int, float) or not math.isfinite(value):
            _failed(errors, value, path, "be a finite number", sensitive)
        elif low is not None and value < low:
            _failed(errors, value, path, f"have value greater than or equal to {low}", sensitive)
        elif high is not None and value > high:
            _failed(errors, value, path, f"have value less than or equal to {high}", sensitive)

    return check


def _boolean(shape: Any, sensitive: bool) -> Check:
    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is not bool:
            _failed(errors, value, path, "be a boolean", sensitive)

    return check


def _timestamp(shape: Any, sensitive: bool) -> Check:
    def check(value: Any, path: str, errors: list[str]) -> None:
        if isinstance(value, datetime):
            return
        if type(value) not in (int, float) or not math.isfinite(value) or abs(value) > LATEST_TIMESTAMP:
            _failed(errors, value, path, "be a timestamp (seconds since the epoch)", sensitive)

    return check


def _blob(shape: Any, sensitive: bool) -> Check:
    def check(value: Any, path: str, errors: list[str]) -> None:
        if type(value) is bytes:
            size = len(value)
        elif type(value) is str:
            try:
                size = len(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                _failed(errors, value, path, "be base64-encoded binary data", sensitive)
                return
        else:
            _failed(errors, value, path, "be binary data", sensitive)
            return
        _check_length(size, value, path, errors, shape, sensitive)

    return check
