"""Names of classifiers, versions and endpoints, restricted as Amazon Comprehend restricts them."""

from __future__ import annotations

import re

from tagloop.errors import InvalidRequest

NAME_PATTERN = r"^[A-Za-z0-9](-*[A-Za-z0-9])*$"
_NAME = re.compile(NAME_PATTERN)
MAX_NAME = 63


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid name (letters, digits, inner hyphens, ≤ 63), else raise."""
    if not value or len(value) > MAX_NAME or not _NAME.fullmatch(value):
        shown = repr(value) if len(value) <= 100 else f"{value[:20]!r}... ({len(value):,} characters)"
        raise InvalidRequest(
            f"invalid {kind} name {shown}: use 1-{MAX_NAME} letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return value
