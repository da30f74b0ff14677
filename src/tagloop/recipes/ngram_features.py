"""TF-IDF features of a fitted word n-gram vocabulary, computed with array operations.

scikit-learn's ``TfidfVectorizer.transform`` builds every n-gram as a new Python string and
looks it up in a dictionary of (here) hundreds of thousands of strings: about 0.25 ms per
20 Newsgroups document, most of the serving time. This computes the same matrix (same
tokens, counts, sublinear tf, idf and l2 norm) from word ids (``word_ids``; small batches:
``re`` and one dictionary lookup a word), then every n-gram of a whole batch becomes one
integer key looked up in a ``KeyTable``. It covers the vocabularies the default recipe
fits: lowercased words of ``(?u)\\b\\w\\w+\\b``, n-grams joined by one space, no stop words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import repeat

import numpy as np
import scipy.sparse as sp

from tagloop.recipes.key_table import KeyTable
from tagloop.recipes.word_ids import WORD_RUNS, WordIds

TOKEN_PATTERN = r"(?u)\b\w\w+\b"
"""scikit-learn's default token pattern, which the recipe trains with."""
ARRAY_TOKENIZING_CHARS = 1_000
"""Batches of at least this many characters are tokenized by ``WordIds`` (whose fixed cost
per call is about that of ``re`` on 1,000 characters), smaller ones by ``re``."""


class NgramFeatures:
    """Maps texts to l2-normalized TF-IDF rows over a fixed n-gram vocabulary."""

    def __init__(self, vocabulary: Mapping[str, int], idf: np.ndarray, sublinear_tf: bool) -> None:
        self.size = len(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.sublinear_tf = sublinear_tf
        self._tokenize = re.compile(WORD_RUNS).findall
        terms = list(vocabulary)
        columns = np.fromiter(vocabulary.values(), dtype=np.int64, count=len(terms))
        words = " ".join(terms).split(" ")  # every word of every term, in order
        tokens = {word: i for i, word in enumerate(dict.fromkeys(words))}
        word_ids = np.fromiter(map(tokens.__getitem__, words), dtype=np.int64, count=len(words))
        lengths = np.fromiter(map(str.count, terms, repeat(" ")), dtype=np.int64, count=len(terms)) + 1
        starts = np.cumsum(lengths) - lengths  # where each term's words begin in word_ids
        self.tokens = tokens
        self.radix = max(len(tokens), 1)
        self.max_n = int(lengths.max(initial=1))
        if self.radix**self.max_n >= 2**63:
            raise ValueError(f"{self.max_n}-grams over {self.radix:,} words do not fit 64-bit keys")
        self._tables: dict[int, KeyTable] = {}
        self._unigram_columns = np.full(len(tokens) + 1, -1, dtype=np.int64)  # [-1]: unknown words
        unigrams = lengths == 1
        self._unigram_columns[word_ids[starts[unigrams]]] = columns[unigrams]
        for n in range(2, self.max_n + 1):
            chosen = lengths == n
            if chosen.any():
                parts = [word_ids[starts[chosen] + i] for i in range(n)]
                self._tables[n] = KeyTable(self._combine(parts), columns[chosen])
        self._word_ids = WordIds(list(tokens))

    def _combine(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        key = parts[0].astype(np.int64, copy=True)
        for part in parts[1:]:
            key *= self.radix
            key += part
        return key

    def _regex_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        get = self.tokens.get
        flat: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [get(token, -1) for token in self._tokenize(text.lower())]
            lengths[row] = len(ids)
            flat.extend(ids)
        return np.array(flat, dtype=np.int64), np.repeat(np.arange(len(texts), dtype=np.int64), lengths)

    def _grams(self, ids: np.ndarray, doc: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The documents and columns of the n-grams found in the vocabulary (``ids`` are the
        token ids of every document in a row, ``doc`` the document of each)."""
        unigrams = self._unigram_columns[ids]
        known = unigrams >= 0
        found_docs, found_columns = [doc[known]], [unigrams[known]]
        for n, table in self._tables.items():  # n > 1: unigrams are looked up directly above
            span = len(ids) - n + 1
            if span <= 0:
                continue
            parts = [ids[i : i + span] for i in range(n)]
            valid = doc[:span] == doc[n - 1 : n - 1 + span]  # an n-gram never spans two documents
            for part in parts:
                valid &= part >= 0
            columns = table.get(self._combine([part[valid] for part in parts]))
            hit = columns >= 0
            found_columns.append(columns[hit])
            found_docs.append(doc[:span][valid][hit])
        return found_docs, found_columns

    def _weights(self, counts: np.ndarray, columns: np.ndarray) -> np.ndarray:
        weights = counts.astype(np.float64)
        if self.sublinear_tf:
            np.log(weights, out=weights)
            weights += 1.0
        weights *= self.idf[columns]
        return weights

    def transform(self, texts: Sequence[str], dtype: type = np.float64) -> sp.csr_matrix:
        """Documents × features, each row l2-normalized (rows without features stay zero);
        computed in float64 and stored as ``dtype``."""
        rows = len(texts)
        if sum(map(len, texts)) >= ARRAY_TOKENIZING_CHARS:
            ids, doc = self._word_ids(texts)
        else:
            ids, doc = self._regex_ids(texts)
        found_docs, found_columns = self._grams(ids, doc)
        pairs, counts = np.unique(
            np.concatenate(found_docs) * self.size + np.concatenate(found_columns), return_counts=True
        )
        docs, columns = np.divmod(pairs, self.size)
        index = np.int32 if len(pairs) < 2**31 and self.size < 2**31 else np.int64  # scipy's own choice
        indptr = np.zeros(rows + 1, dtype=index)
        np.cumsum(np.bincount(docs, minlength=rows), out=indptr[1:])
        weights = self._weights(counts, columns)
        norms = np.sqrt(np.bincount(docs, weights=weights**2, minlength=rows))
        weights /= norms[docs]  # rows without features have no entries to divide
        data: tuple[np.ndarray, np.ndarray, np.ndarray] = (
            weights.astype(dtype, copy=False),
            columns.astype(index),
            indptr,
        )
        return sp.csr_matrix(data, shape=(rows, self.size))  # index arrays as scipy keeps them: no copies
