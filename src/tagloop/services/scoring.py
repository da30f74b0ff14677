"""Scoring chunks of texts in this process or in forked worker processes, keeping order."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from tagloop.recipes.base import TextModel

Item = TypeVar("Item")
Scorer = Callable[[Iterable[Item], Callable[[Item], list[str]]], Iterator[tuple[Item, np.ndarray]]]

_worker_model: TextModel | None = None


def _score_in_worker(texts: list[str]) -> np.ndarray:
    assert _worker_model is not None
    return _worker_model.scores(texts) if texts else np.zeros((0, len(_worker_model.labels)))


def _adopt(model: TextModel) -> None:
    global _worker_model
    _worker_model = model


@contextmanager
def parallel_scorer(model: TextModel, processes: int) -> Iterator[Scorer[Any]]:
    """A function mapping items to (item, scores of ``texts_of(item)``), in input order.

    With ``processes`` > 1 on a platform that can fork, a pool of forked processes shares
    the loaded model copy-on-write; the pool starts only once a second item arrives.
    """
    pools: list[Any] = []

    def here(items: Iterable[Any], texts_of: Callable[[Any], list[str]]) -> Iterator[tuple[Any, np.ndarray]]:
        for item in items:
            texts = texts_of(item)
            yield item, model.scores(texts) if texts else np.zeros((0, len(model.labels)))

    def forked(
        items: Iterable[Any], texts_of: Callable[[Any], list[str]]
    ) -> Iterator[tuple[Any, np.ndarray]]:
        iterator = iter(items)
        first = next(iterator, None)
        if first is None:
            return
        second = next(iterator, None)
        if second is None:
            yield from here([first], texts_of)
            return
        _adopt(model)
        pool = multiprocessing.get_context("fork").Pool(processes)
        pools.append(pool)
        window: list[tuple[Any, Any]] = []
        for item in _chain(first, second, iterator):
            window.append((item, pool.apply_async(_score_in_worker, (texts_of(item),))))
            if len(window) > 2 * processes:
                done, result = window.pop(0)
                yield done, result.get()
        for done, result in window:
            yield done, result.get()

    can_fork = "fork" in multiprocessing.get_all_start_methods()
    try:
        yield forked if processes > 1 and can_fork else here
    finally:
        for pool in pools:
            pool.terminate()


def _chain(first: Any, second: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield second
    yield from rest
