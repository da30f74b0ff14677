"""Loading trained models from the artifact store, verified and cached per process."""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict

from tagloop.errors import ArtifactCorrupt, ResourceUnavailable
from tagloop.recipes.base import TextModel
from tagloop.recipes.registry import load_model
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.tables import ModelVersionRow

log = logging.getLogger(__name__)


class ModelCache:
    """Loads each model version once per process; keeps the ``capacity`` most recently used."""

    def __init__(self, artifacts: ArtifactStore, capacity: int = 4) -> None:
        self.artifacts = artifacts
        self.capacity = max(1, capacity)
        self._models: OrderedDict[tuple[int, str], TextModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[int, str], threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._models)

    def get(self, version: ModelVersionRow, verify: bool = False) -> TextModel:
        """The version's model, loaded once; with ``verify`` the stored file is read and its
        hash checked even when the model is in memory (what other processes will load).

        A model file that is damaged or missing raises :class:`ArtifactCorrupt` (or
        :class:`ArtifactMissing`) without its path, which goes to the log."""
        try:
            return self._get(version, verify)
        except ArtifactCorrupt as exc:
            where = exc.location or version.artifact_path
            log.error(
                "model version %s (id %s) at %s cannot be loaded: %s", version.name, version.id, where, exc
            )
            raise

    def _get(self, version: ModelVersionRow, verify: bool) -> TextModel:
        if not version.artifact_path or not version.artifact_sha256:
            raise ResourceUnavailable(f"model version {version.name} has no trained model ({version.status})")
        key = (version.id, version.artifact_sha256)
        model = self._cached(key)
        if model is not None:
            if verify:
                self.artifacts.read_bytes(version.artifact_path, version.artifact_sha256)
            return model
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one thread loads a version; the others wait for it and share it
            model = self._cached(key)
            if model is not None:
                return model
            try:
                model = load_model(self.artifacts.read_bytes(version.artifact_path, version.artifact_sha256))
                # A model holds hundreds of thousands of objects that live as long as it is
                # served: leave them out of the garbage collector's full passes, which would
                # otherwise scan them again and again (a 50+ ms pause per pass).
                gc.freeze()
                with self._lock:
                    self._models[key] = model
                    while len(self._models) > self.capacity:
                        self._models.popitem(last=False)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return model

    def _cached(self, key: tuple[int, str]) -> TextModel | None:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
            return model
