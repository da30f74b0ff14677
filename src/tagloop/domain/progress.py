"""How long work reports how far it has come."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]
"""Called with a fraction in [0, 1] and a short message while work (training, a job) runs."""
