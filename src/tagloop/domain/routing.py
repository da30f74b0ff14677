"""Which predictions go to human review, and why: an endpoint's routing policy.

:func:`decide` runs once per classified document on the serving hot path, so it takes the
:class:`~tagloop.domain.predictions.Prediction` as it is, plus a uniform draw in [0, 1) that
the caller supplies (``random.random()``); with the draw passed in, the rule is deterministic
and testable. Measured with ``timeit`` on the development machine (shared 2-core VM):
about 0.2-0.25 µs per call (lambda call included) for a multi-class prediction routed by no
rule or by the threshold, and for a multi-label one checked against the band; :func:`priority`
about 0.3 µs (multi-class) and 0.5 µs (multi-label).

The rules, checked in this order (the first that applies is the reason):

1. ``low_confidence``: the best score is below ``threshold`` (both modes; in multi-label
   mode the best *assigned* label's score). In multi-label mode, also when any assigned
   label's score lies in the uncertainty band ``[band_low, band_high]`` (bounds included):
   the band is reported as ``low_confidence`` too, to keep the issue's reason list.
2. ``margin``: multi-class only, the two best scores differ by less than ``margin``. A
   prediction that shows one class only (``top=1``) has no second score and is not routed
   by this rule: the caller classifies with at least two classes shown when margin routing
   is on. (In multi-label mode the assigned labels do not compete, so no margin.)
3. ``label``: the prediction's best class (multi-class) or any assigned label
   (multi-label) is one of ``labels``, routed always.
4. ``audit``: a prediction no rule routed is sent with probability ``audit`` (quality
   control of confident predictions): when ``draw < audit``.

A prediction with an ``error`` is never routed. A multi-label prediction with no label
assigned has no score to judge (the :class:`Prediction` carries the assigned labels only):
only the audit can route it. ``feedback`` is the reason of tasks end users create; no
policy rule produces it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tagloop.domain.predictions import Prediction
from tagloop.domain.records import Mode
from tagloop.errors import InvalidRequest


class Reason(StrEnum):
    """Why a review task exists."""

    LOW_CONFIDENCE = "low_confidence"
    MARGIN = "margin"
    LABEL = "label"
    AUDIT = "audit"
    FEEDBACK = "feedback"
    ACTIVE_LEARNING = "active_learning"
    """Picked from the unlabelled pool by a query strategy (services/review_fill.py)."""


_FIELDS = ("threshold", "margin", "band", "labels", "audit", "required", "lease_seconds", "lifetime_seconds")
MAX_REQUIRED = 3  # A2I's TaskCount: 1-3 answers
LEASE_SECONDS = (30, 28_800)  # A2I's TaskTimeLimitInSeconds bounds
LIFETIME_SECONDS = (60, 864_000)  # A2I's TaskAvailabilityLifetimeInSeconds bounds (10 days)


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """An endpoint's routing settings; every rule is off by default (None, empty, 0)."""

    threshold: float | None = None
    """Route when the best score is below this."""
    margin: float | None = None
    """Multi-class: route when the two best scores differ by less than this."""
    band: tuple[float, float] | None = None
    """Multi-label: route when an assigned label's score is in [low, high]."""
    labels: frozenset[str] = frozenset()
    """Route always when one of these labels is predicted."""
    audit: float = 0.0
    """Share of otherwise unrouted predictions sent for audit, in [0, 1]."""
    required: int = 1
    """Answers each routed task needs (A2I's TaskCount), 1 to 3."""
    lease_seconds: int = 300
    """How long a reviewer holds a task handed out (A2I's TaskTimeLimitInSeconds), 30 s to 8 h."""
    lifetime_seconds: int | None = None
    """How long a routed task waits for its answers before it expires (A2I's
    TaskAvailabilityLifetimeInSeconds), 60 s to 10 days; None: it never expires."""

    def __post_init__(self) -> None:
        _whole("required", self.required, 1, MAX_REQUIRED)
        _whole("lease_seconds", self.lease_seconds, *LEASE_SECONDS)
        if self.lifetime_seconds is not None:
            _whole("lifetime_seconds", self.lifetime_seconds, *LIFETIME_SECONDS)
        for name in ("threshold", "margin"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _unit(name, value))
        object.__setattr__(self, "audit", _unit("audit", self.audit))
        if self.band is not None:
            band = self.band
            if not isinstance(band, (tuple, list)) or len(band) != 2:
                raise InvalidRequest("band: expected two numbers [low, high]")
            low, high = _unit("band", band[0]), _unit("band", band[1])
            if low > high:
                raise InvalidRequest(f"band: low {low} is above high {high}")
            object.__setattr__(self, "band", (low, high))
        labels = self.labels
        if isinstance(labels, str) or not isinstance(labels, (list, tuple, set, frozenset)):
            raise InvalidRequest("labels: expected a list of label names")
        for label in labels:
            if not isinstance(label, str) or not label.strip():
                raise InvalidRequest(f"labels: {label!r} is not a label name")
        if isinstance(labels, (list, tuple)) and len(set(labels)) != len(labels):
            raise InvalidRequest("labels: a label is listed twice")
        object.__setattr__(self, "labels", frozenset(labels))

    @property
    def active(self) -> bool:
        """Whether any rule can route a prediction."""
        return bool(
            self.threshold is not None
            or self.margin is not None
            or self.band is not None
            or self.labels
            or self.audit > 0
        )

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready values (labels sorted, so the same policy reads the same)."""
        return {
            "threshold": self.threshold,
            "margin": self.margin,
            "band": list(self.band) if self.band is not None else None,
            "labels": sorted(self.labels),
            "audit": self.audit,
            "required": self.required,
            "lease_seconds": self.lease_seconds,
            "lifetime_seconds": self.lifetime_seconds,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RoutingPolicy:
        """A policy from :meth:`to_dict`'s shape; missing keys take the defaults.

        Raises :class:`InvalidRequest` naming the field for an unknown key or a bad value.
        """
        if not isinstance(data, dict):
            raise InvalidRequest("routing policy: expected an object")
        unknown = sorted(str(key) for key in data if key not in _FIELDS)
        if unknown:
            raise InvalidRequest(f"{unknown[0]}: unknown routing setting (known: {', '.join(_FIELDS)})")
        labels = data.get("labels")
        if labels is None:
            labels = []
        elif not isinstance(labels, list):
            raise InvalidRequest("labels: expected a list of label names")
        band = data.get("band")
        if band is not None and (not isinstance(band, list) or len(band) != 2):
            raise InvalidRequest("band: expected two numbers [low, high]")
        audit = data.get("audit")
        required, lease = data.get("required"), data.get("lease_seconds")
        return cls(
            threshold=data.get("threshold"),
            margin=data.get("margin"),
            band=(band[0], band[1]) if band is not None else None,
            labels=labels,  # type: ignore[arg-type]  # validated and frozen in __post_init__
            audit=0.0 if audit is None else audit,
            required=1 if required is None else required,
            lease_seconds=300 if lease is None else lease,
            lifetime_seconds=data.get("lifetime_seconds"),
        )

    def task_settings(self) -> dict[str, Any]:
        """What the review tasks this policy creates carry: answers required, lease, lifetime
        (the fields of ``domain.review.NewTask`` of the same names)."""
        return {
            "required": self.required,
            "lease_seconds": self.lease_seconds,
            "lifetime_seconds": self.lifetime_seconds,
        }


def _unit(name: str, value: object) -> float:
    """``value`` as a float in [0, 1], or InvalidRequest naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"{name}: expected a number between 0 and 1, got {value!r}")
    number = float(value)
    if not (0.0 <= number <= 1.0) or math.isnan(number):
        raise InvalidRequest(f"{name}: {value!r} is not between 0 and 1")
    return number


def _whole(name: str, value: object, low: int, high: int) -> None:
    """Check ``value`` is a whole number in [low, high], or InvalidRequest naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name}: expected a whole number from {low:,} to {high:,}, got {value!r}")
    if not low <= value <= high:
        raise InvalidRequest(f"{name}: {value:,} is not from {low:,} to {high:,}")


def decide(policy: RoutingPolicy, prediction: Prediction, draw: float) -> Reason | None:
    """Why ``prediction`` goes to review under ``policy``, or None if it does not.

    ``draw`` is a uniform number in [0, 1) the caller takes (``random.random()``); it is
    used only by the audit rule. See the module docstring for the rules and their order.
    """
    if prediction.error is not None:
        return None
    scores = prediction.scores
    threshold = policy.threshold
    if prediction.mode is Mode.MULTI_CLASS:
        if scores:
            if threshold is not None and scores[0] < threshold:
                return Reason.LOW_CONFIDENCE
            margin = policy.margin
            if margin is not None and len(scores) > 1 and scores[0] - scores[1] < margin:
                return Reason.MARGIN
            if policy.labels and prediction.labels[0] in policy.labels:
                return Reason.LABEL
    elif scores:
        if threshold is not None and scores[0] < threshold:
            return Reason.LOW_CONFIDENCE
        band = policy.band
        if band is not None:
            low, high = band
            for score in scores:
                if low <= score <= high:
                    return Reason.LOW_CONFIDENCE
        if policy.labels and not policy.labels.isdisjoint(prediction.labels):
            return Reason.LABEL
    if draw < policy.audit:
        return Reason.AUDIT
    return None


def priority(prediction: Prediction) -> float:
    """How uncertain ``prediction`` is, in [0, 1]: higher goes first in the review queue.

    Multi-class: ``1 - (best - second)`` (a missing second counts as 0), so a near tie is
    close to 1 and a sure answer close to 0. Multi-label: the highest ``1 - |2s - 1|`` over
    the assigned labels' scores (1 for a score of 0.5, 0 for 0 or 1); no label assigned
    (or an error): 0.
    """
    scores = prediction.scores
    if not scores:
        return 0.0
    if prediction.mode is Mode.MULTI_CLASS:
        second = scores[1] if len(scores) > 1 else 0.0
        value = 1.0 - (scores[0] - second)
    else:
        value = 1.0 - min(abs(2.0 * score - 1.0) for score in scores)
    return min(1.0, max(0.0, value))
