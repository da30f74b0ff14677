"""Every recipe by name, and loading a saved model of any of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tagloop.errors import ArtifactCorrupt
from tagloop.recipes.base import TextModel, unpack
from tagloop.recipes.tfidf_linear import TfidfLinearModel

Builder = Callable[[dict[str, Any], dict[str, np.ndarray]], TextModel]
RECIPES: dict[str, Builder] = {
    TfidfLinearModel.recipe: TfidfLinearModel.from_parts,
}
"""Recipe name -> how to rebuild its model from the metadata and arrays of its file."""


def load_model(data: bytes) -> TextModel:
    """Rebuild a model of any registered recipe from :meth:`TextModel.to_bytes` output."""
    meta, arrays = unpack(data)
    build = RECIPES.get(meta.get("recipe", ""))
    if build is None:
        raise ArtifactCorrupt(f"unknown model recipe {meta.get('recipe')!r}")
    try:
        return build(meta, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactCorrupt(f"model file is incomplete: {type(exc).__name__}: {exc}") from exc
