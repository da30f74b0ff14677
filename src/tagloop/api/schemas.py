"""Request and response bodies of the native API (snake_case JSON), kept apart from tables."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from tagloop.domain.limits import MAX_INFERENCE_UNITS
from tagloop.domain.names import MAX_NAME, NAME_PATTERN

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
InferenceUnits = Annotated[int, Field(ge=1, le=MAX_INFERENCE_UNITS)]


class ClassifyRequest(BaseModel):
    text: str | None = Field(None, description="One document.")
    Text: str | None = Field(None, description="One document, as Comprehend and the AWS samples spell it.")
    texts: list[str] | None = Field(None, description="Several documents (up to the batch limit).")
    top: int | None = Field(
        None,
        ge=0,
        description="Classes per document, best first (0: all); default: the server's "
        "TAGLOOP_CLASSIFY_TOP_CLASSES (3) for a multi-class model, every assigned label otherwise.",
    )

    @model_validator(mode="after")
    def one_of(self) -> ClassifyRequest:
        if self.text is not None and self.Text is not None:
            raise ValueError("send one of `text` or `Text`, not both")
        if (self.text is None and self.Text is None) == (self.texts is None):
            raise ValueError("send exactly one of `text` (or `Text`) or `texts`")
        return self


class Score(BaseModel):
    name: str
    score: float


class Classification(BaseModel):
    classes: list[Score] | None = None
    labels: list[Score] | None = None
    prediction_id: str | None = None
    error: dict[str, str] | None = None


class ClassifyResponse(Classification):
    model_version: str
    endpoint: str


class BatchClassifyResponse(BaseModel):
    model_version: str
    endpoint: str
    results: list[Classification]


class InvokeRequest(BaseModel):
    """What a client of an API Gateway + Lambda in front of Comprehend sends."""

    Text: str = Field(description="One document (`text` is taken too).")


class ComprehendScore(BaseModel):
    Name: str
    Score: float


class InvokeResponse(BaseModel):
    """What that stack's Lambda answers: Comprehend's ``Classes`` (or ``Labels``) as ``body``."""

    statusCode: int = Field(description="200; errors carry the HTTP status here too.")  # noqa: N815
    body: list[ComprehendScore]


class EndpointCreate(BaseModel):
    name: Name
    classifier: Name
    version: Name | None = None
    desired_inference_units: InferenceUnits = 1


class EndpointUpdate(BaseModel):
    version: Name | None = None
    desired_inference_units: InferenceUnits | None = None


class KeyCreate(BaseModel):
    name: Name = Field(description="What people know the key by: 1-63 letters, digits, inner hyphens.")
    scope: Annotated[str, StringConstraints(max_length=32)] = "classify"
