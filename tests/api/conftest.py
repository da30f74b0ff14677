"""What the HTTP API tests share: a key's Bearer header, a native error answer's message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def auth(key: Mapping[str, Any] | str) -> dict[str, str]:
    """The Bearer header of an access key (as ``keys.create`` answers it) or of its secret."""
    secret = key if isinstance(key, str) else key["secret"]
    return {"Authorization": f"Bearer {secret}"}


def error_of(response: Any, status: int) -> str:
    """The message of a native error answer, after checking its status and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    message: str = body["error"]["message"]
    return message
