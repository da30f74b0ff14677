"""Request bodies of the ``/v1`` inbox routes (snake_case JSON); every field bounded."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tagloop.domain.names import MAX_NAME, NAME_PATTERN

MAX_URL_CHARS = 2_048

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]


class InboxCreate(BaseModel):
    """A folder or S3 prefix to watch for a classifier. The URL must lie in an allowed data
    location (TAGLOOP_ALLOWED_DATA_URLS); the classifier is made if new."""

    model_config = ConfigDict(extra="forbid")

    classifier: Name
    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)] = Field(
        description="A folder (absolute path or file:///) or an S3 prefix (s3://bucket/prefix/)."
    )
    name: Name | None = Field(None, description="The inbox's name (default: the classifier's).")
    profile: Name | None = Field(None, description="The classifier's import profile reading each file.")
    train: Literal["replace", "append"] = Field(
        "replace", description="replace: the file alone; append: the file plus the verified documents."
    )
    deploy: Literal["auto", "better", "never"] = Field(
        "auto",
        description="auto: create the endpoint if the classifier has none, else promote by the loop's "
        "rule (or only if better); better: only if better on the held-out set; never.",
    )
    endpoint: Name | None = Field(None, description="Endpoint to create, or to move.")
    mode: Literal["MULTI_CLASS", "MULTI_LABEL"] = Field("MULTI_CLASS", description="A new classifier's mode.")


class InboxUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="false: stop picking up new files (files in work finish).")
