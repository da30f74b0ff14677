"""The contract every recipe in ``registry.RECIPES`` must pass (like scikit-learn's common
estimator checks): a recipe added to the registry is checked here without a line of test.

Each recipe is fitted in both modes on a small synthetic dataset made here, through the
registry's uniform ``Recipe.fit``, exactly as a training job calls it.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from tagloop.domain.metrics import evaluate
from tagloop.domain.records import Mode
from tagloop.errors import ArtifactCorrupt, Stopped
from tagloop.recipes.base import TextModel, pack, unpack
from tagloop.recipes.registry import RECIPES, Recipe, load_model

LABELS = ["ALPHA", "BRAVO", "CHARLIE", "DELTA"]
VOCABULARY = {
    label: [f"{label.lower()}{word}" for word in ("fox", "owl", "elk", "yak", "emu", "cod")]
    for label in LABELS
}
FILLER = ["please", "help", "today", "again", "thanks", "issue", "since", "morning"]
SCORED = [
    "alphafox alphaowl please help",
    "bravoelk bravoyak charlieemu thanks",
    "words the model never saw at all",
    "deltacod " * 300,
    "Ünïcödé — deltayak ✓ 日本語",
    "alphafox alphaowl please help",  # the same text twice in one batch
]


def synthetic(mode: Mode, documents: int, seed: int) -> list[tuple[tuple[str, ...], str]]:
    """(labels, text) pairs: a few words of each label's vocabulary among common words."""
    rng = np.random.default_rng(seed)
    result = []
    for i in range(documents):
        first = LABELS[i % len(LABELS)]
        labels = [first]
        if mode is Mode.MULTI_LABEL and rng.random() < 0.4:
            labels.append(str(rng.choice([label for label in LABELS if label != first])))
        words = [str(w) for label in labels for w in rng.choice(VOCABULARY[label], 3, replace=False)]
        words += [str(w) for w in rng.choice(FILLER, 3)]
        rng.shuffle(words)
        result.append((tuple(sorted(labels)), " ".join(words)))
    return result


@dataclass
class Fitted:
    recipe: Recipe
    mode: Mode
    model: TextModel
    progress: list[tuple[float, str]]


CASES = [(name, mode) for name in RECIPES for mode in Mode]


@pytest.fixture(scope="module", params=CASES, ids=[f"{name}-{mode.value}" for name, mode in CASES])
def fitted(request: pytest.FixtureRequest) -> Fitted:
    name, mode = request.param
    recipe = RECIPES[name]
    docs = synthetic(mode, 120, seed=0)
    progress: list[tuple[float, str]] = []
    model = recipe.fit(
        mode,
        list(LABELS),
        (text for _, text in docs),  # streamed once, as a training job reads them from the database
        [labels for labels, _ in docs],
        {},
        n_jobs=1,
        progress=lambda fraction, message: progress.append((fraction, message)),
    )
    return Fitted(recipe, mode, model, progress)


def test_the_registry_names_each_recipe_by_its_models_recipe():
    assert RECIPES
    for name, recipe in RECIPES.items():
        assert recipe.name == name


def test_fit_gives_a_model_of_the_recipe_mode_and_labels(fitted):
    model = fitted.model
    assert (model.recipe, model.mode, model.labels) == (fitted.recipe.name, fitted.mode, LABELS)


def test_fit_reports_progress_from_0_to_1_in_order(fitted):
    fractions = [fraction for fraction, _ in fitted.progress]
    assert fractions and fractions[-1] == 1.0
    assert all(0.0 <= fraction <= 1.0 for fraction in fractions)
    assert fractions == sorted(fractions)
    assert all(isinstance(message, str) and message for _, message in fitted.progress)


def test_fit_stops_on_request(fitted):
    docs = synthetic(fitted.mode, 120, seed=0)
    with pytest.raises(Stopped):
        fitted.recipe.fit(
            fitted.mode,
            list(LABELS),
            (text for _, text in docs),
            [labels for labels, _ in docs],
            {},
            n_jobs=1,
            should_stop=lambda: True,
        )


def test_fit_ignores_parameters_of_other_recipes_and_of_the_version(fitted):
    """A version records the split and its sources beside the recipe's own parameters."""
    docs = synthetic(fitted.mode, 120, seed=0)
    parameters = {"recipe": fitted.recipe.name, "test_fraction": 0.1, "sources": {"train": "x.csv"}}
    model = fitted.recipe.fit(
        fitted.mode, list(LABELS), (text for _, text in docs), [labels for labels, _ in docs], parameters
    )
    assert model.labels == LABELS


def test_scores_are_probabilities_one_row_per_text_one_column_per_label(fitted):
    scores = fitted.model.scores(SCORED)
    assert isinstance(scores, np.ndarray) and np.issubdtype(scores.dtype, np.floating)
    assert scores.shape == (len(SCORED), len(LABELS))
    assert np.isfinite(scores).all()
    assert ((scores >= 0.0) & (scores <= 1.0)).all()
    if fitted.mode is Mode.MULTI_CLASS:
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-9)
    assert fitted.model.scores([]).shape == (0, len(LABELS))


def test_scores_accept_any_iterable(fitted):
    np.testing.assert_array_equal(fitted.model.scores(iter(SCORED)), fitted.model.scores(SCORED))


def test_decide_gives_each_document_valid_labels_best_first(fitted):
    scores = fitted.model.scores(SCORED)
    picks = fitted.model.decide(scores)
    assert len(picks) == len(SCORED)
    for row, chosen in zip(scores, picks, strict=True):
        assert chosen, "every document gets at least one label"
        assert all(type(i) is int and 0 <= i < len(LABELS) for i in chosen)
        assert len(set(chosen)) == len(chosen)
        assert row[chosen[0]] == row.max(), "the best label comes first"
        assert [row[i] for i in chosen] == sorted((row[i] for i in chosen), reverse=True)
        if fitted.mode is Mode.MULTI_CLASS:
            assert len(chosen) == 1
    assert fitted.model.decide(fitted.model.scores([])) == []


def test_the_model_learns_what_the_labels_mean(fitted):
    """A recipe that ignores its texts (constant scores) fails here: the data is easy."""
    held_out = synthetic(fitted.mode, 60, seed=1)
    picks = fitted.model.decide(fitted.model.scores([text for _, text in held_out]))
    predicted = [[LABELS[i] for i in chosen] for chosen in picks]
    result = evaluate(fitted.mode, LABELS, [list(labels) for labels, _ in held_out], predicted)
    assert result.metrics["MicroF1Score"] >= 0.8, result.metrics


def test_a_saved_model_loads_back_identical(fitted):
    model = fitted.model
    loaded = load_model(model.to_bytes())
    assert type(loaded) is type(model)
    assert (loaded.recipe, loaded.mode, loaded.labels) == (model.recipe, model.mode, model.labels)
    np.testing.assert_array_equal(loaded.scores(SCORED), model.scores(SCORED))  # bit for bit
    assert loaded.decide(loaded.scores(SCORED)) == model.decide(model.scores(SCORED))
    assert loaded.describe() == model.describe()
    assert load_model(loaded.to_bytes()).describe() == model.describe()


def test_a_texts_scores_do_not_depend_on_the_batch_it_is_scored_in(fitted):
    """Served scores are reproducible: the coalescer batches unrelated requests together."""
    model = fitted.model
    batch = model.scores(SCORED)
    np.testing.assert_array_equal(np.vstack([model.scores([text]) for text in SCORED]), batch)
    np.testing.assert_array_equal(model.scores(SCORED[::-1])[::-1], batch)
    np.testing.assert_array_equal(model.scores(SCORED[:2] + ["other words"] * 50)[:2], batch[:2])
    np.testing.assert_array_equal(batch[0], batch[-1])


def test_describe_is_json(fitted):
    described = fitted.model.describe()
    assert isinstance(described, dict)
    assert json.loads(json.dumps(described, allow_nan=False)) == described  # stored as JSON as it is


# ---- a model file never unpickles ----------------------------------------------------------
SPRUNG: list[str] = []


def _spring() -> None:
    SPRUNG.append("unpickled")


class Trap:
    """Unpickling this runs code: a loader that unpickles would set SPRUNG."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _spring, ()


def _npz(entries: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **entries)  # type: ignore[arg-type]
    return buffer.getvalue()


def _tampered(data: bytes) -> Iterator[tuple[str, bytes]]:
    meta, arrays = unpack(data)
    trap = np.array([Trap()], dtype=object)
    encoded = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    yield "a pickle instead of a model file", pickle.dumps(Trap())
    yield "a pickled metadata entry", _npz({"__meta__": trap, **arrays})
    for name in arrays:
        yield f"a pickled array {name}", _npz({"__meta__": encoded, **arrays, name: trap})
        yield f"no array {name}", pack(meta, {k: v for k, v in arrays.items() if k != name})
    yield (
        "metadata that is not an object",
        _npz({"__meta__": np.frombuffer(b"[1, 2]", dtype=np.uint8), **arrays}),
    )
    yield "metadata that is not JSON", _npz({"__meta__": np.frombuffer(b"{nope", dtype=np.uint8), **arrays})
    yield "no recipe", pack({k: v for k, v in meta.items() if k != "recipe"}, arrays)
    yield "an unknown recipe", pack(meta | {"recipe": "no-such-recipe"}, arrays)
    yield "no metadata", _npz(arrays)
    for size in (0, 10, len(data) // 2, len(data) - 1):
        yield f"the first {size} bytes", data[:size]


def test_a_tampered_model_file_is_corrupt_and_never_unpickled(fitted):
    data = fitted.model.to_bytes()
    cases = list(_tampered(data))
    assert len(cases) > 10
    wrong = {}
    for case, tampered in cases:
        try:
            load_model(tampered)
            wrong[case] = "loaded"
        except ArtifactCorrupt:
            pass
        except Exception as exc:  # every other outcome is the failure reported
            wrong[case] = repr(exc)
    assert wrong == {}
    assert SPRUNG == [], "a model file was unpickled"
    assert load_model(data).labels == LABELS  # the untampered file still loads
