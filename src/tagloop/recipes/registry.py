"""Every recipe by name: how to fit a model of it, and how to load a saved one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tagloop.domain.records import Mode
from tagloop.errors import ArtifactCorrupt
from tagloop.recipes import tfidf_linear
from tagloop.recipes.base import Progress, TextModel, unpack

Builder = Callable[[dict[str, Any], dict[str, np.ndarray]], TextModel]
"""Rebuilds a model from the metadata and arrays of its file (see :func:`base.unpack`)."""


class Fit(Protocol):
    def __call__(
        self,
        mode: Mode,
        labels: list[str],
        texts: Iterable[str],
        label_sets: Sequence[tuple[str, ...]],
        parameters: Mapping[str, Any],
        *,
        n_jobs: int = ...,
        progress: Progress | None = ...,
        should_stop: Callable[[], bool] | None = ...,
        unlabelled: Sequence[str] | None = ...,
    ) -> TextModel:
        """Train on ``texts`` (streamed once) whose labels are ``label_sets``; ``labels`` are
        the model's labels in order. ``parameters`` are a version's recorded parameters (a
        recipe ignores keys that are not its own and uses defaults for missing ones).
        ``should_stop`` returning True makes it raise ``Stopped``. ``unlabelled``: texts
        without labels (the classifier's pool) for a recipe that learns from them when its
        parameters ask (tfidf-linear's ``self_training``); others ignore them."""
        ...


@dataclass(frozen=True)
class Recipe:
    name: str
    fit: Fit
    from_parts: Builder


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in [
        Recipe(
            tfidf_linear.TfidfLinearModel.recipe,
            tfidf_linear.fit_labelled,
            tfidf_linear.TfidfLinearModel.from_parts,
        ),
    ]
}
"""Recipe name -> the recipe. ``tests/recipes/test_recipe_contract.py`` checks every one."""


def load_model(data: bytes) -> TextModel:
    """Rebuild a model of any registered recipe from :meth:`TextModel.to_bytes` output."""
    meta, arrays = unpack(data)
    recipe = RECIPES.get(meta.get("recipe", ""))
    if recipe is None:
        raise ArtifactCorrupt(f"unknown model recipe {meta.get('recipe')!r}")
    try:
        return recipe.from_parts(meta, arrays)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise ArtifactCorrupt(f"model file is incomplete: {type(exc).__name__}: {exc}") from exc
