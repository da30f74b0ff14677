"""Pages of the Comprehend API's list operations: NextToken is where the next page starts."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from tagloop.errors import InvalidRequest

_TOKEN = re.compile(r"[0-9]{1,18}")


def start(token: str | None) -> int:
    """Where the page a NextToken of ours points at starts; any other token is refused."""
    if token is None:
        return 0
    try:
        decoded = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (binascii.Error, ValueError):
        decoded = ""
    if _TOKEN.fullmatch(decoded) is None:
        raise InvalidRequest("Invalid NextToken")
    return int(decoded)


def page_size(body: dict[str, Any]) -> int:
    size = int(body.get("MaxResults") or 100)
    if not 1 <= size <= 500:
        raise InvalidRequest("MaxResults must be between 1 and 500")
    return size


def page(items: list[dict[str, Any]], body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    first = start(body.get("NextToken"))
    size = page_size(body)
    chunk = items[first : first + size]
    more = first + size < len(items)
    return chunk, base64.urlsafe_b64encode(str(first + size).encode()).decode() if more else None
