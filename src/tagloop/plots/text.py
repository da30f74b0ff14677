"""Text on plots: labels are the user's, of any length; a tick shows at most ``TICK_CHARS`` of
one (the alt text and the tables beside a plot keep it whole)."""

from __future__ import annotations

TICK_CHARS = 24


def short(label: object, limit: int = TICK_CHARS) -> str:
    """``label`` as a tick label: cut to ``limit`` characters with an ellipsis."""
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "…"
