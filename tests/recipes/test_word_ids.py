"""Word ids found with array operations equal ``re.findall`` plus a dictionary lookup."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from tagloop.recipes import word_ids as word_ids_module
from tagloop.recipes.word_ids import WORD_RUNS, WordIds, word_characters

ALPHABET = "ab_9Z \t\n.,-'é\u0301²½東京ΣςIİ\u00a0\u200b!?\U0001f600\U00010400\ud800ǅ"
VOCABULARY = ["ab", "a9", "__", "東京", "σς", "éé", "ǆǆ", "b²", "ab_9", "zz", "\U00010428\U00010428"]


def expected(words: list[str], texts: list[str]) -> tuple[list[int], list[int]]:
    index = {word: i for i, word in enumerate(words)}
    ids, docs = [], []
    for doc, text in enumerate(texts):
        for token in re.findall(WORD_RUNS, text.lower()):
            ids.append(index.get(token, -1))
            docs.append(doc)
    return ids, docs


def random_texts(rng: random.Random, count: int) -> list[str]:
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))) for _ in range(count)]


def test_word_characters_are_exactly_those_of_re():
    table = word_characters()
    pattern = re.compile(r"\w")
    assert table.tolist() == [pattern.fullmatch(chr(c)) is not None for c in range(0x110000)]


@pytest.mark.parametrize("seed", range(5))
def test_the_ids_and_documents_of_re_findall(seed):
    rng = random.Random(seed)
    texts = random_texts(rng, 300)
    words = sorted({token for text in texts[:150] for token in re.findall(WORD_RUNS, text.lower())})
    words += VOCABULARY
    words = list(dict.fromkeys(words))
    ids, docs = WordIds(words)(texts)
    assert (ids.tolist(), docs.tolist()) == expected(words, texts)
    assert (ids >= 0).any() and (ids == -1).any()


def test_texts_split_into_chunks_give_the_same_ids(monkeypatch):
    rng = random.Random(7)
    texts = random_texts(rng, 200)
    mapper = WordIds(VOCABULARY)
    whole = mapper(texts)
    monkeypatch.setattr(word_ids_module, "CHUNK_CHARS", 100)  # many chunks, some of one long text
    chunked = mapper([*texts, "ab " * 500])
    assert chunked[0].tolist()[: len(whole[0])] == whole[0].tolist()
    assert chunked[1].tolist()[: len(whole[1])] == whole[1].tolist()
    assert (chunked[0].tolist(), chunked[1].tolist()) == expected(VOCABULARY, [*texts, "ab " * 500])


def test_empty_inputs():
    mapper = WordIds(VOCABULARY)
    for texts in ([], [""], ["", " a ", "!"]):
        ids, docs = mapper(texts)
        assert ids.tolist() == [] and docs.tolist() == []
    ids, docs = mapper(["", "x ab", ""])
    assert ids.tolist() == [0] and docs.tolist() == [1]


def test_each_table_draws_its_own_hash_base_and_finds_the_same_ids():
    first, second = WordIds(VOCABULARY), WordIds(VOCABULARY)
    assert first._base != second._base
    texts = random_texts(random.Random(11), 50)
    assert np.array_equal(first(texts)[0], second(texts)[0])


@pytest.mark.parametrize("word", ["a", "ab cd", "ab-", ""])
def test_a_vocabulary_word_must_be_one_token(word):
    with pytest.raises(ValueError, match="run of two or more word characters"):
        WordIds(["ok", word])
