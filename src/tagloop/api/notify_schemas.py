"""Request bodies of the ``/v1`` notification routes (snake_case JSON); every field bounded."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tagloop.domain.names import MAX_NAME, NAME_PATTERN
from tagloop.domain.notifications import KINDS, MAX_URL_CHARS

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
Kind = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class ChannelCreate(BaseModel):
    """A webhook (`target`: its URL) or e-mail channel (`target`: comma-separated addresses).
    Over /v1 the URL or the addresses' domains must be in TAGLOOP_NOTIFY_ALLOWED_TARGETS.
    A webhook's `secret` signs its deliveries (HMAC-SHA256); none given: one is generated and
    answered once."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Literal["webhook", "email"]
    target: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)]
    events: list[Kind] = Field(
        default_factory=list,
        max_length=len(KINDS),
        description=f"Event kinds it hears (empty: all): {', '.join(KINDS)}, "
        "or a family such as `training.*`.",
    )
    classifier: Name | None = Field(None, description="Only events of this classifier.")
    secret: Annotated[str, StringConstraints(min_length=16, max_length=256)] | None = None


class ChannelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
