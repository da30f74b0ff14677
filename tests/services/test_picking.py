"""Candidates from a real fitted model (the default recipe), as the review fill builds them."""

from __future__ import annotations

import numpy as np
import pytest

from tagloop.domain.records import Mode
from tagloop.domain.strategies import strategy
from tagloop.errors import InvalidRequest
from tagloop.recipes.registry import RECIPES
from tagloop.services.picking import candidates

TRAIN = [
    (("billing",), "invoice payment refund charged twice"),
    (("billing",), "refund my payment please invoice wrong"),
    (("billing",), "charged twice on the invoice"),
    (("access",), "password reset login locked out"),
    (("access",), "cannot login password expired"),
    (("access",), "locked out of my account login"),
] * 3


@pytest.fixture(scope="module")
def model():
    labels = ["access", "billing"]
    return RECIPES["tfidf-linear-svm"].fit(
        Mode.MULTI_CLASS, labels, [t for _, t in TRAIN], [ls for ls, _ in TRAIN], {}, n_jobs=1
    )


POOL = [
    "invoice refund payment",  # clearly billing
    "password login reset",  # clearly access
    "invoice login",  # one word of each: the doubtful one
    "xylophone quasar zeppelin",
]


def test_scores_are_the_models_own(model):
    found = candidates(model, POOL)
    assert found.scores.shape == (4, 2)
    np.testing.assert_allclose(found.scores, model.scores(POOL))
    assert found.features is None and found.labelled is None and not found.multi_label
    picked = strategy("margin").select(found, 2, np.random.default_rng(0)).tolist()
    assert set(picked) == {2, 3}  # the mixed and the unknown text, not the clear ones


def test_features_are_the_models_l2_normalized_rows(model):
    found = candidates(model, POOL, labelled_texts=[t for _, t in TRAIN[:4]], need_features=True)
    assert found.features.shape == (4, len(model.vocabulary))
    assert found.labelled.shape == (4, len(model.vocabulary))
    norms = np.sqrt(np.asarray(found.features.multiply(found.features).sum(axis=1))).ravel()
    np.testing.assert_allclose(norms, [1, 1, 1, 0])  # the unknown text has no known word
    # the first pool text and the first training text share their words "invoice refund payment"
    assert (found.features[0] @ found.labelled[0].T).toarray()[0, 0] > 0.5


def test_an_empty_pool_gives_empty_candidates(model):
    found = candidates(model, [], labelled_texts=[], need_features=True)
    assert found.scores.shape == (0, 2)
    assert found.features.shape[0] == 0 and found.labelled.shape[0] == 0


def test_a_model_without_feature_rows_is_refused_for_feature_strategies(model):
    class ScoresOnly:
        recipe = "scores-only"
        mode = Mode.MULTI_CLASS
        labels = model.labels

        def scores(self, texts):
            return model.scores(texts)

    assert candidates(ScoresOnly(), POOL).scores.shape == (4, 2)
    with pytest.raises(InvalidRequest, match=r"scores-only.*offers no feature rows"):
        candidates(ScoresOnly(), POOL, need_features=True)
