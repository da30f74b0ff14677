"""Plain records and vocabularies shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tagloop.errors import InvalidRequest


class Mode(StrEnum):
    MULTI_CLASS = "MULTI_CLASS"
    MULTI_LABEL = "MULTI_LABEL"

    @classmethod
    def parse(cls, value: str) -> Mode:
        """Accept ``multi-class``, ``MULTI_CLASS``, ``multi_label`` and the like."""
        normalized = value.strip().upper().replace("-", "_")
        try:
            return cls(normalized)
        except ValueError:
            raise InvalidRequest(f"unknown mode {value!r}: use multi-class or multi-label") from None


class Origin(StrEnum):
    IMPORT = "import"
    REVIEW = "review"
    FEEDBACK = "feedback"
    PREDICTION = "prediction"
    """A pool document sampled from an endpoint's logged predictions."""


class Split(StrEnum):
    TRAIN = "train"
    TEST = "test"
    POOL = "pool"


class VersionStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    TRAINING = "TRAINING"
    TRAINED = "TRAINED"
    IN_ERROR = "IN_ERROR"
    STOP_REQUESTED = "STOP_REQUESTED"
    STOPPED = "STOPPED"


DEFAULT_LABEL_DELIMITER = "|"


@dataclass(frozen=True, slots=True)
class LabelledText:
    """One valid input row: its text, its labels (possibly none for unlabelled data), its line."""

    text: str
    labels: tuple[str, ...]
    line: int


class JobStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOP_REQUESTED = "STOP_REQUESTED"
    STOPPED = "STOPPED"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)
