"""Request bodies of the ``/v1`` import-profile routes (snake_case JSON); every field bounded.

The profile's own rules (which fields go together, a query that must only read) are checked by
``domain/profiles.ProfileSpec``; these models bound what is read at all."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tagloop.domain import profiles

Url = Annotated[str, StringConstraints(min_length=1, max_length=profiles.MAX_URL_CHARS)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=profiles.MAX_NAME_CHARS)]
Value = Annotated[str, StringConstraints(max_length=profiles.MAX_NAME_CHARS)]


class FilterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: Name
    values: list[Value] = Field(min_length=1, max_length=profiles.MAX_FILTER_VALUES)
    exclude: bool = Field(False, description="Drop the rows with these values (default: keep only them).")


class ProfileBody(BaseModel):
    """An import profile (README, Import profiles). A `database_url` must be one of
    TAGLOOP_ALLOWED_DATABASE_URLS (a SQLite file: inside TAGLOOP_ALLOWED_DATA_URLS)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[profiles.FILE_FORMATS] | None = None  # type: ignore[valid-type]
    text_columns: list[Name] | None = Field(None, max_length=profiles.MAX_COLUMNS)
    label_column: Name | None = None
    label_delimiter: Annotated[str, StringConstraints(min_length=1, max_length=16)] | None = None
    joiner: Annotated[str, StringConstraints(max_length=profiles.MAX_JOINER_CHARS)] | None = None
    filters: list[FilterBody | Annotated[str, StringConstraints(min_length=3, max_length=1_024)]] | None = (
        Field(
            None, max_length=profiles.MAX_FILTERS, description='Objects, or "COLUMN=VALUE" / "COLUMN!=VALUE".'
        )
    )
    query: Annotated[str, StringConstraints(min_length=1, max_length=profiles.MAX_QUERY_CHARS)] | None = None
    database_url: (
        Annotated[str, StringConstraints(min_length=1, max_length=profiles.MAX_URL_CHARS)] | None
    ) = None
    members: list[Name] | None = Field(None, max_length=profiles.MAX_PATTERNS)
    label_from: Literal[profiles.LABEL_FROM] | None = None  # type: ignore[valid-type]
    label_case: Literal[profiles.LABEL_CASES] | None = None  # type: ignore[valid-type]
    label_map: dict[Name, Name] | None = Field(None, max_length=profiles.MAX_LABEL_MAP)


class TryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Url | None = Field(
        None, description="A file or archive inside an allowed data location (none for a database profile)."
    )
    rows: int = Field(10, ge=0, le=100, description="Rows to show.")
    scan: int = Field(1_000, ge=1, le=100_000, description="Rows to read at most.")
