"""The learning loop's settings and the small rules every part of the loop shares.

A classifier's loop (Comprehend's flywheel) keeps a champion (the active version), trains
challengers on all verified training data, compares both on a frozen test set and promotes by
the rule of :class:`LoopSettings`. Verified documents are split once, by a rule of their text
alone (:func:`held_out`): a share of them is the loop's own test set, never trained on, and the
same text always falls on the same side, whoever labels it and whenever.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from tagloop.domain.metrics import METRIC_NAMES
from tagloop.errors import InvalidRequest

LOWER_IS_BETTER = frozenset({"HammingLoss"})
"""Metrics where a smaller value is the better model."""


def text_hash(text: str) -> str:
    """What makes two texts "the same" for the pool and the verified data: 32 hex digits of
    BLAKE2b over the text with whitespace runs collapsed and case folded (migration 0009
    wrote the hashes of the documents it found with this very rule: keep them equal)."""
    normalized = " ".join(text.split()).casefold()
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=16).hexdigest()


def held_out(hash_: str, share: float) -> bool:
    """Whether a verified document with this :func:`text_hash` belongs to the loop's frozen
    test set when ``share`` of them are held out: the first 8 hex digits read as a fraction."""
    return int(hash_[:8], 16) / 0x1_0000_0000 < share


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """How a classifier's loop decides, when it runs, and how it keeps reviewers busy."""

    metric: str = "F1Score"
    """The metric a challenger must improve (Comprehend's names: ``F1Score`` is macro-F1)."""
    min_gain: float = 0.0
    """Promote only if the metric improves by more than 0 and by at least this much."""
    max_label_drop: float = 0.05
    """…and no label's F1 falls by more than this (the guard)."""
    promote: str = "auto"
    """``auto``: an iteration promotes a challenger that passes the rule; ``manual``: it only
    records the decision it would take (a person promotes, as with Comprehend's flywheels)."""
    test_share: float = 0.2
    """The share of verified documents held out as the frozen test set (:func:`held_out`)."""
    after_verified: int | None = None
    """Start an iteration once this many new verified documents arrived since the last one."""
    every_seconds: int | None = None
    """Start an iteration on this schedule (at least 60 s apart)."""
    refill_below: int | None = None
    """Put active-learning picks in the review queue when fewer tasks than this wait."""
    refill_strategy: str = "margin"
    refill_count: int = 50

    def __post_init__(self) -> None:
        if self.metric not in METRIC_NAMES:
            raise InvalidRequest(f"metric: {self.metric!r} is not one of {', '.join(METRIC_NAMES)}")
        for name in ("min_gain", "max_label_drop", "test_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise InvalidRequest(f"{name}: expected a number between 0 and 1, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise InvalidRequest(f"{name}: {value!r} is not between 0 and 1")
            object.__setattr__(self, name, float(value))
        if self.promote not in ("auto", "manual"):
            raise InvalidRequest(f"promote: {self.promote!r} is not auto or manual")
        for name, low in (("after_verified", 1), ("every_seconds", 60), ("refill_below", 1)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise InvalidRequest(f"{name}: expected a whole number of at least {low:,}, got {value!r}")
        if isinstance(self.refill_count, bool) or not isinstance(self.refill_count, int):
            raise InvalidRequest(f"refill_count: expected a whole number, got {self.refill_count!r}")
        if not 1 <= self.refill_count <= 10_000:
            raise InvalidRequest(f"refill_count: {self.refill_count:,} is not from 1 to 10,000")
        if not isinstance(self.refill_strategy, str) or not self.refill_strategy:
            raise InvalidRequest("refill_strategy: expected a strategy name")

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LoopSettings:
        """Settings from :meth:`to_dict`'s shape; missing keys take the defaults. Raises
        :class:`InvalidRequest` naming the field for an unknown key or a bad value."""
        if not isinstance(data, dict):
            raise InvalidRequest("loop settings: expected an object")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise InvalidRequest(f"{unknown[0]}: unknown loop setting (known: {', '.join(known)})")
        return cls(**{key: value for key, value in data.items() if value is not None or key in _NULLABLE})

    def updated(self, changes: dict[str, Any]) -> LoopSettings:
        """These settings with ``changes`` applied (a None clears a nullable setting)."""
        return LoopSettings.from_dict(self.to_dict() | dict(changes))


_NULLABLE = frozenset({"after_verified", "every_seconds", "refill_below"})
