"""Composition root: builds storage and services from settings."""

from __future__ import annotations

from functools import cached_property

from tagloop.services.catalog import Catalog
from tagloop.services.models import ModelCache
from tagloop.services.predictions import PredictionService
from tagloop.services.training import TrainingService
from tagloop.settings import Settings
from tagloop.storage import migrate
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.database import Database


class Tagloop:
    """Everything a front end (CLI, API) needs, wired once from :class:`Settings`.

    The embedded SQLite database is migrated automatically; a server database must be
    upgraded with ``tagloop db upgrade`` (so several processes never race to migrate it).
    """

    def __init__(self, settings: Settings | None = None, check_schema: bool = True) -> None:
        self.settings = settings or Settings()
        self.database = Database(self.settings.resolved_database_url)
        if check_schema:
            migrate.ensure_current(self.database, auto_upgrade=self.database.is_embedded)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.resolved_artifacts_url)

    @cached_property
    def models(self) -> ModelCache:
        return ModelCache(self.artifacts, self.settings.model_cache_size)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.database)

    @cached_property
    def training(self) -> TrainingService:
        return TrainingService(self.database, self.artifacts, self.settings)

    @cached_property
    def predictions(self) -> PredictionService:
        return PredictionService(self.database, self.models, self.settings)

    def close(self) -> None:
        self.database.dispose()
