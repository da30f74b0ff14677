"""The unlabelled pool's small rules: which logged predictions feed it, and how active-learning
picks are ranked in the review queue. Pure functions; storage and services live elsewhere.

The pool of a classifier holds texts without verified labels (documents of split ``pool``):
imported from files (origin ``import``, their labels kept as hints when asked) or sampled from
an endpoint's logged predictions (origin ``prediction``). A text already pooled or verified
(:func:`tagloop.domain.loop.text_hash`) is not added again.
"""

from __future__ import annotations

import hashlib
import math

from tagloop.errors import InvalidRequest

MAX_RATE = 1.0


def sampled(prediction_id: str, rate: float) -> bool:
    """Whether the logged prediction ``prediction_id`` is in the ``rate`` share that feeds the
    pool: the first 8 bytes of BLAKE2b over the id, read as a fraction of 2**64, below ``rate``.
    The same id always gets the same answer, in every process and on every tick."""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(prediction_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def check_rate(rate: object) -> float:
    """An endpoint's ``pool_rate`` (a share from 0 to 1), or InvalidRequest naming the field."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or math.isnan(rate):
        raise InvalidRequest(f"pool_rate: expected a number from 0 to 1, got {rate!r}")
    if not 0.0 <= float(rate) <= MAX_RATE:
        raise InvalidRequest(f"pool_rate: {rate!r} is not from 0 to 1")
    return float(rate)


def rank_priority(rank: int, count: int) -> float:
    """The review-queue priority of the pick of ``rank`` (0: the strategy's first choice) among
    ``count`` picks: ``1 - rank / count``, so the first is 1.0 and the last ``1 / count``,
    on the scale of routed tasks' priorities (``domain.routing.priority``, in [0, 1])."""
    if count <= 0 or not 0 <= rank < count:
        raise ValueError(f"rank {rank} is not within {count} picks")
    return 1.0 - rank / count
