"""The promotion rule: does a challenger replace the champion?

Both models are evaluated on the same frozen test set (the iteration makes sure of it); this
module only compares the two :class:`~tagloop.domain.metrics.Evaluation` records by the
loop's :class:`~tagloop.domain.loop.LoopSettings`:

- no champion yet: the challenger is promoted;
- the chosen metric must improve by more than 0 and by at least ``min_gain`` (for
  ``HammingLoss``, improve means fall);
- and no label's F1 may fall by more than ``max_label_drop`` (the guard), whatever the
  average says: a model that gets better on average by forgetting a rare label is kept out.

With ``promote="manual"`` the verdict is recorded and nothing moves (a person promotes, as
with Comprehend's flywheels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tagloop.domain.loop import LoopSettings
from tagloop.domain.metrics import Evaluation

EPSILON = 1e-12
"""Differences smaller than this are float noise: the two figures are equal."""

PROMOTED, KEPT = "promoted", "kept"


@dataclass(frozen=True)
class Decision:
    """What the rule says. ``passed``: the challenger is better by the rule; ``promote``: it is
    to be made champion now (passed, and promotion is automatic)."""

    promote: bool
    reason: str
    per_label: dict[str, dict[str, float | None]] = field(default_factory=dict)
    passed: bool = False

    @property
    def decision(self) -> str:
        return PROMOTED if self.promote else KEPT

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "promote": self.promote,
            "passed": self.passed,
            "reason": self.reason,
            "per_label": self.per_label,
        }


def per_label_deltas(
    champion: Evaluation | None, challenger: Evaluation
) -> dict[str, dict[str, float | None]]:
    """Per label (every label either evaluation lists): both F1 figures and their difference
    (challenger minus champion; None without a champion)."""
    labels = list(challenger.per_label)
    if champion is not None:
        labels += [label for label in champion.per_label if label not in challenger.per_label]
    result: dict[str, dict[str, float | None]] = {}
    for label in labels:
        new = float(challenger.per_label.get(label, {}).get("f1", 0.0))
        if champion is None:
            result[label] = {"champion": None, "challenger": new, "delta": None}
        else:
            old = float(champion.per_label.get(label, {}).get("f1", 0.0))
            result[label] = {"champion": old, "challenger": new, "delta": new - old}
    return result


def decide(settings: LoopSettings, champion: Evaluation | None, challenger: Evaluation) -> Decision:
    """The rule of the module docstring, with a reason a person can read."""
    per_label = per_label_deltas(champion, challenger)
    manual = settings.promote == "manual"
    metric = settings.metric
    if champion is None:
        reason = "no champion yet: the challenger becomes the first"
        return _verdict(True, manual, reason, per_label)
    old, new = float(champion.metrics[metric]), float(challenger.metrics[metric])
    gain = (new - old) if settings.higher_is_better else (old - new)
    figures = f"{metric} {old:.4f} → {new:.4f}"
    if abs(gain) <= EPSILON:
        return _verdict(False, manual, f"{figures}: no change", per_label)
    if gain < 0:
        return _verdict(False, manual, f"{figures}: worse", per_label)
    if gain + EPSILON < settings.min_gain:
        reason = f"{figures}: gain {gain:.4f} is below the minimum gain {settings.min_gain:.4f}"
        return _verdict(False, manual, reason, per_label)
    dropped = sorted(
        (
            label
            for label, f in per_label.items()
            if f["delta"] is not None and -f["delta"] > settings.max_label_drop + EPSILON
        ),
    )
    if dropped:
        falls = ", ".join(f"{label} ({-(per_label[label]['delta'] or 0.0):.4f})" for label in dropped)
        reason = f"{figures}, but the F1 of {falls} fell by more than the guard {settings.max_label_drop:.4f}"
        return _verdict(False, manual, reason, per_label)
    return _verdict(True, manual, f"{figures}: gain {gain:.4f}", per_label)


def _verdict(
    passed: bool, manual: bool, reason: str, per_label: dict[str, dict[str, float | None]]
) -> Decision:
    if passed and manual:
        reason += " (promotion is manual: promote the challenger to make it the champion)"
    return Decision(promote=passed and not manual, reason=reason, per_label=per_label, passed=passed)
