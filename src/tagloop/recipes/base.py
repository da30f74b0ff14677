"""The contract every trained text model (every recipe) follows, and its safe file format.

A model turns texts into a (documents × labels) matrix of calibrated scores and decides
which labels each document gets. It serializes to bytes in a format that is safe to load
(no pickle): arrays in an ``.npz`` loaded with ``allow_pickle=False`` plus JSON metadata.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from itertools import islice
from typing import Any, Protocol

import numpy as np

from tagloop.domain.progress import Progress
from tagloop.domain.records import Mode
from tagloop.errors import ArtifactCorrupt

__all__ = ["Progress", "TextModel", "chunks", "pack", "predict", "unpack"]


class TextModel(Protocol):
    recipe: str
    mode: Mode
    labels: list[str]

    def scores(self, texts: Iterable[str]) -> np.ndarray:
        """Calibrated scores, (documents × labels); multi-class rows sum to 1."""
        ...

    def decide(self, scores: np.ndarray) -> list[list[int]]:
        """Indices of the labels each document gets, best first."""
        ...

    def to_bytes(self) -> bytes: ...

    def describe(self) -> dict[str, Any]:
        """Parameters and calibration facts worth recording with a model version."""
        ...


def pack(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Serialize JSON metadata and numeric arrays into one ``.npz`` byte string."""
    buffer = io.BytesIO()
    encoded = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
    members: dict[str, Any] = {"__meta__": encoded, **arrays}
    np.savez(buffer, **members)
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of :func:`pack`; never unpickles anything."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except Exception as exc:  # zip, npy and JSON errors of a damaged file all land here
        raise ArtifactCorrupt(f"model file cannot be read: {type(exc).__name__}: {exc}") from exc
    if not isinstance(meta, dict):
        raise ArtifactCorrupt(f"model file cannot be read: its metadata is a {type(meta).__name__}")
    return meta, arrays


def chunks(items: Iterable[str], size: int) -> Iterable[list[str]]:
    """Consecutive lists of at most ``size`` items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def predict(
    model: TextModel, texts: Iterable[str], chunk: int = 2_000
) -> Iterable[tuple[np.ndarray, list[list[int]]]]:
    """Scores and decided label indices, one chunk of documents at a time."""
    for batch in chunks(texts, chunk):
        scores = model.scores(batch)
        yield scores, model.decide(scores)
