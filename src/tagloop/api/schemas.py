"""Request and response bodies of the native API (snake_case JSON), kept apart from tables."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

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


class Review(BaseModel):
    """Whether this document went to human review. Present on every result of an endpoint
    whose routing policy is active (absent otherwise). ``routed`` is true only once the review
    task is stored; if it could not be stored the answer says false (the server log says why)."""

    routed: bool
    task_id: str | None = Field(None, description="The review task (when routed).")
    reason: str | None = Field(None, description="Why: low_confidence, margin, label or audit (when routed).")


class Classification(BaseModel):
    classes: list[Score] | None = None
    labels: list[Score] | None = None
    prediction_id: str | None = None
    error: dict[str, str] | None = None
    review: Review | None = None


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
    follows: bool | None = Field(
        None, description="Serve the classifier's champion (default: true without a version)."
    )


class EndpointUpdate(BaseModel):
    version: Name | None = None
    desired_inference_units: InferenceUnits | None = None
    follows: bool | None = Field(None, description="true: follow the champion; false: pin.")
    pool_rate: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Share (0-1) of its logged predictions (with their text) fed to its classifier's "
        "unlabelled pool; 0: off.",
    )


Share = Annotated[float, Field(ge=0.0, le=1.0)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class LoopSettingsPatch(BaseModel):
    """Loop settings to change (``null`` clears after_verified, every_seconds, refill_below)."""

    model_config = ConfigDict(extra="forbid")
    metric: ShortText | None = None
    min_gain: Share | None = None
    max_label_drop: Share | None = None
    promote: ShortText | None = None
    test_share: Share | None = None
    after_verified: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    every_seconds: Annotated[int, Field(ge=60, le=366 * 86_400)] | None = None
    refill_below: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    refill_strategy: ShortText | None = None
    refill_count: Annotated[int, Field(ge=1, le=10_000)] | None = None


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Name | None = Field(None, description="Version; default: the champion before the current one.")


class KeyCreate(BaseModel):
    name: Name = Field(description="What people know the key by: 1-63 letters, digits, inner hyphens.")
    scope: Annotated[str, StringConstraints(max_length=32)] = "classify"


class RoutingSettings(BaseModel):
    """An endpoint's review routing policy; every rule off when left out. The first rule that
    applies is the reason: threshold (and band) `low_confidence`, then `margin`, `label`, `audit`."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(None, description="Route when the best score is below this (0-1).")
    margin: float | None = Field(
        None, description="Multi-class: route when the two best scores differ by less than this (0-1)."
    )
    band: list[float] | None = Field(
        None, description="Multi-label: route when an assigned label's score is in [low, high]."
    )
    labels: list[str] | None = Field(None, description="Route always when one of these is predicted.")
    audit: float | None = Field(None, description="Share (0-1) of otherwise unrouted predictions to audit.")
    required: int | None = Field(None, description="Answers each task needs (A2I TaskCount), 1-3; default 1.")
    lease_seconds: int | None = Field(
        None, description="How long a reviewer holds a task (TaskTimeLimitInSeconds), 30-28800; default 300."
    )
    lifetime_seconds: int | None = Field(
        None,
        description="How long a task waits for answers (TaskAvailabilityLifetimeInSeconds), 60-864000; "
        "default: no expiry.",
    )


class RoutingView(RoutingSettings):
    """An endpoint's routing policy as stored, every setting filled in."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str
    active: bool = Field(description="Whether any rule can route a prediction.")


class FeedbackRequest(BaseModel):
    """End-user feedback, in one of two forms: on a logged prediction (`prediction_id`, with
    `correct` and, when wrong, the right `labels`), or on texts (`classifier` with `sentence`
    or `sentences`, as the seed workflow's feedback API sends). Each becomes a moderator task."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-f]{32}$")] | None = Field(
        None, description="The `prediction_id` of a classify answer (or invoke's X-Tagloop-Prediction-Id)."
    )
    correct: bool | None = Field(None, description="Whether the prediction was right.")
    labels: list[Annotated[str, StringConstraints(max_length=5_000)]] | None = Field(
        None, max_length=1_000, description="The right labels, when it was wrong."
    )
    comment: Annotated[str, StringConstraints(max_length=5_000)] | None = None
    classifier: Name | None = Field(None, description="With `sentence` or `sentences`: the classifier.")
    sentence: str | None = Field(None, description="One text to check (classified now).")
    sentences: list[str] | None = Field(
        None,
        description="Several texts (up to TAGLOOP_MAX_CLASSIFY_DOCUMENTS, each TAGLOOP_MAX_CLASSIFY_BYTES).",
    )

    @model_validator(mode="after")
    def one_form(self) -> FeedbackRequest:
        texts = self.sentence is not None or self.sentences is not None
        if (self.prediction_id is None) == (self.classifier is None):
            raise ValueError("send either `prediction_id`, or `classifier` with `sentence` or `sentences`")
        if self.prediction_id is not None:
            if texts:
                raise ValueError("`sentence` and `sentences` go with `classifier`, not `prediction_id`")
            if self.correct is None:
                raise ValueError("`correct` (true or false) is required with `prediction_id`")
        elif (self.sentence is None) == (self.sentences is None):
            raise ValueError("send exactly one of `sentence` or `sentences` with `classifier`")
        return self


class FeedbackResponse(BaseModel):
    task_ids: list[str] = Field(description="The review tasks created, in the moderators' queue.")
    classifier: str | None = None
    version: str | None = Field(None, description="The version whose prediction the tasks carry (texts).")
    prediction_id: str | None = None
