"""Request bodies of the ``/v1`` pool routes (snake_case JSON); every field bounded."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tagloop.api.review_schemas import MAX_LABEL_CHARS
from tagloop.domain.routing import MAX_REQUIRED
from tagloop.services.pool import MAX_DOCUMENTS, MAX_HINTS
from tagloop.services.review_fill import MAX_COUNT

MAX_TEXT_CHARS = 1_000_000  # TAGLOOP_MAX_TEXT_BYTES' default; the service checks the setting's bytes
MAX_URL_CHARS = 2_048
MAX_COLUMNS = 20

Hint = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_CHARS)]
Column = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class PoolDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
    labels: list[Hint] | None = Field(
        None, max_length=MAX_HINTS, description="Label hints, kept only with `keep_labels`."
    )


class PoolAdd(BaseModel):
    """Texts for a classifier's pool: `documents` (texts, or objects with `text` and optional
    `labels`), or `source`, a file in an allowed data location (TAGLOOP_ALLOWED_DATA_URLS) read
    like a training file. Texts already pooled or verified are reported, not added."""

    model_config = ConfigDict(extra="forbid")

    documents: (
        Annotated[
            list[Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | PoolDocument],
            Field(max_length=MAX_DOCUMENTS),
        ]
        | None
    ) = Field(None, description=f"Up to {MAX_DOCUMENTS:,} documents.")
    source: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)] | None = Field(
        None, description="A file's URL or path inside an allowed data location."
    )
    format: Literal["comprehend-csv", "csv", "jsonl"] | None = Field(
        None, description="The file's format (default: from its name)."
    )
    text_columns: list[Column] | None = Field(None, max_length=MAX_COLUMNS)
    label_column: Column | None = None
    keep_labels: bool = Field(False, description="Keep labels as hints (default: dropped).")

    @model_validator(mode="after")
    def one_of(self) -> PoolAdd:
        if (self.documents is None) == (self.source is None):
            raise ValueError("send exactly one of `documents` or `source`")
        if self.documents is not None and (self.format or self.text_columns or self.label_column):
            raise ValueError("`format`, `text_columns` and `label_column` describe a `source` file")
        return self


class FillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9-]*$")] = (
        Field("margin", description="Query strategy: random, least-confidence, margin, entropy, …")
    )
    count: int = Field(50, ge=1, le=MAX_COUNT, description="Picks to put in the review queue.")
    required: int = Field(1, ge=1, le=MAX_REQUIRED, description="Answers each task needs.")
