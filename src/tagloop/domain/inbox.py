"""The inbox's rules, without I/O: its settings, which names are files to process, when a
file is complete enough to pick up, and where a processed or failed file goes.

An inbox (``services/inbox.py``) watches a folder or an S3 prefix. A file there goes
``seen`` → ``claimed`` → ``training`` → ``deploying`` → ``processed`` or ``failed``; these
functions decide the steps that depend only on names, fingerprints and times, so they are
tested on their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tagloop.domain.names import check_name
from tagloop.errors import InvalidRequest

SEEN, CLAIMED, TRAINING, DEPLOYING, PROCESSED, FAILED = (
    "seen",
    "claimed",
    "training",
    "deploying",
    "processed",
    "failed",
)
STATES = (SEEN, CLAIMED, TRAINING, DEPLOYING, PROCESSED, FAILED)
ENDED = (PROCESSED, FAILED)
WORKING = (CLAIMED, TRAINING, DEPLOYING)

PROCESSED_FOLDER, FAILED_FOLDER = "processed", "failed"
READY_SUFFIX = ".ready"
"""``<name>.ready`` beside a file says it is complete: it is picked up at once."""
ERROR_SUFFIX = ".error.json"

TRAIN_MODES = ("replace", "append")
"""``replace``: a version trained on the file alone; ``append``: the file plus the
classifier's verified documents (review answers, feedback)."""
DEPLOY_POLICIES = ("auto", "better", "never")
"""``auto``: create the endpoint if the classifier has none, else promote by the loop's rule
when the classifier has a loop, else only when better on the held-out set; ``better``: only
when better on the held-out set (the metric improves; no label guard); ``never``: train and
evaluate only."""

# Names writers give files while they are still writing them (browsers, rsync, scp, office
# suites), and tagloop's own files: never picked up.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".filepart", ".swp", "~")
MAX_NAME_CHARS = 1_000


@dataclass(frozen=True)
class InboxSettings:
    """How an inbox trains and deploys (``InboxRow.settings``)."""

    train: str = "replace"
    deploy: str = "auto"
    endpoint: str | None = None
    """The endpoint to create when the classifier has none (default: the classifier's name),
    or, for pinned endpoints, the one to move (default: all of the classifier's)."""

    def __post_init__(self) -> None:
        if self.train not in TRAIN_MODES:
            raise InvalidRequest(f"train: {self.train!r} is not one of {', '.join(TRAIN_MODES)}")
        if self.deploy not in DEPLOY_POLICIES:
            raise InvalidRequest(f"deploy: {self.deploy!r} is not one of {', '.join(DEPLOY_POLICIES)}")
        if self.endpoint is not None:
            if not isinstance(self.endpoint, str):
                raise InvalidRequest("endpoint: expected a name")
            check_name("endpoint", self.endpoint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> InboxSettings:
        known = {key: stored[key] for key in ("train", "deploy", "endpoint") if key in stored}
        return cls(**known)


def is_candidate(name: str) -> bool:
    """Whether a name in the inbox is a file to process: not hidden (``.name`` is how rsync
    and many uploaders write), not a marker, an error report or a partial download."""
    if not name or len(name) > MAX_NAME_CHARS or "/" in name or "\\" in name:
        return False
    if name.startswith((".", "~$")):
        return False
    lowered = name.lower()
    return not lowered.endswith((READY_SUFFIX, ERROR_SUFFIX, *PARTIAL_SUFFIXES))


def claimable(
    has_marker: bool,
    stable_since: datetime | None,
    scan_started: datetime,
    now: datetime,
    stable_seconds: float,
) -> bool:
    """Whether a seen file may be picked up: its ``.ready`` marker is there, or its
    fingerprint was first observed before this scan began (so at least two looks saw it
    unchanged) and at least ``stable_seconds`` ago."""
    if has_marker:
        return True
    if stable_since is None or stable_since >= scan_started:
        return False
    return (now - stable_since).total_seconds() >= stable_seconds


def destination(folder: str, name: str, taken: bool, file_id: int) -> str:
    """The name a file gets in ``processed/`` or ``failed/``: its own, or, when an earlier file
    of that name is there already, ``<stem>.<file id><suffix>`` (nothing is overwritten)."""
    if not taken:
        return f"{folder}/{name}"
    stem, dot, suffix = name.partition(".")
    return f"{folder}/{stem}.{file_id}{dot}{suffix}" if dot else f"{folder}/{name}.{file_id}"
