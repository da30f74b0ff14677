"""The array-based TF-IDF features equal scikit-learn's TfidfVectorizer on the same vocabulary."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from tagloop.recipes.ngram_features import TOKEN_PATTERN, WORD_RUNS, NgramFeatures

WORDS = [
    *("printer", "vpn", "mailbox", "invoice", "refund", "password", "laptop", "wifi", "screen", "login"),
    *("déjà", "vu", "Größe", "ÉCOLE", "東京", "x", "y"),
]


def corpus(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(0, 30))]
        texts.append(
            rng.choice([" ", ", ", "\n", " -- "]).join(words).upper()
            if rng.random() < 0.2
            else " ".join(words)
        )
    return texts


def fitted(ngram_max: int, sublinear_tf: bool, texts: list[str]) -> TfidfVectorizer:
    vectorizer = TfidfVectorizer(
        ngram_range=(1, ngram_max),
        min_df=2,
        sublinear_tf=sublinear_tf,
        token_pattern=TOKEN_PATTERN,
        dtype=np.float64,
    )
    return vectorizer.fit(texts)


@pytest.mark.parametrize("ngram_max", [1, 2, 3])
@pytest.mark.parametrize("sublinear_tf", [True, False])
def test_the_same_matrix_as_scikit_learn(ngram_max, sublinear_tf):
    vectorizer = fitted(ngram_max, sublinear_tf, corpus(300, seed=1))
    features = NgramFeatures(vectorizer.vocabulary_, vectorizer.idf_, sublinear_tf)
    unseen = [*corpus(200, seed=2), "", "   ", "a b c", "unknownword otherunknown", "printer printer printer"]
    expected = vectorizer.transform(unseen)
    got = features.transform(unseen)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-12, atol=1e-12)
    for row, text in enumerate(unseen[:40]):  # alone, a text gets the row it got in the batch
        np.testing.assert_array_equal(features.transform([text]).toarray(), got[row].toarray())


def test_an_ngram_never_spans_two_documents():
    vectorizer = fitted(2, True, ["printer jammed", "printer jammed again", "jammed printer"] * 2)
    features = NgramFeatures(vectorizer.vocabulary_, vectorizer.idf_, True)
    texts = ["the printer", "jammed today"]  # joined, "printer jammed" would be a bigram
    np.testing.assert_allclose(features.transform(texts).toarray(), vectorizer.transform(texts).toarray())
    bigram = vectorizer.vocabulary_["printer jammed"]
    assert bigram not in features.transform(texts).indices
    assert bigram in features.transform(["printer jammed"]).indices


def test_empty_inputs():
    vectorizer = fitted(2, True, ["printer jammed", "printer jammed"])
    features = NgramFeatures(vectorizer.vocabulary_, vectorizer.idf_, True)
    assert features.transform([]).shape == (0, len(vectorizer.vocabulary_))
    assert features.transform(["", "zzz"]).nnz == 0


def test_word_runs_find_exactly_the_tokens_of_the_training_pattern():
    rng = random.Random(3)
    alphabet = "ab_9 \t\n.,-'é\u0301²½東京ΣςIİ\u00a0\u200b!?"
    for _ in range(2_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert re.findall(WORD_RUNS, text) == re.findall(TOKEN_PATTERN, text), repr(text)
