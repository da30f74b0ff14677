"""Scoring the documents of requests that arrive together as one batch.

Under load many classify requests are parsed in the same turn of the event loop. Scored one
by one, each pays the fixed cost of a model call (array set-up, calibration, ranking): about
180 µs for one 20 Newsgroups document against under 100 µs a document in a batch of 32.
The first request of a turn schedules a flush for the turn after next, so the requests
parsed in this turn and in the next one (one more poll of the sockets) share the batch: under
32 connections that doubles the batch (about 11 to 21 documents) and gives about 20 % more
requests a second at a lower p99 than flushing in the next turn (waiting a third turn gave no
more). A lone request waits for nothing but two turns of an idle loop.

Each document's scores are computed row by row, so a result does not depend on which other
documents shared its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator

from tagloop.domain.predictions import Prediction
from tagloop.recipes.base import TextModel

Classify = Callable[[TextModel, list[str], "int | None"], Iterable[Prediction]]
"""Scores texts with a model, one prediction per text in order, ``top`` labels each (None: all)."""


class Coalescer:
    def __init__(
        self, classify: Classify, max_documents: int = 256, observe: Callable[[int], None] | None = None
    ) -> None:
        self.classify = classify
        self.max_documents = max_documents
        self.observe = observe or (lambda documents: None)  # the size of each batch
        self._pending: dict[
            tuple[int, int | None], tuple[TextModel, list[tuple[list[str], asyncio.Future[list[Prediction]]]]]
        ] = {}

    async def __call__(self, model: TextModel, texts: list[str], top: int | None = None) -> list[Prediction]:
        """The predictions for ``texts`` (``top`` classes each, None: all), scored with whatever
        else arrived in this turn and asked for as many classes."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Prediction]] = loop.create_future()
        key = (id(model), top)
        entry = self._pending.get(key)
        if entry is None or sum(len(t) for t, _ in entry[1]) + len(texts) > self.max_documents:
            if entry is not None:
                self._flush(key)
            entry = self._pending[key] = (model, [])
            loop.call_soon(loop.call_soon, self._flush, key)  # flush after the next turn
        entry[1].append((texts, future))
        return await future

    def _flush(self, key: tuple[int, int | None]) -> None:
        entry = self._pending.pop(key, None)
        if entry is None:
            return
        model, waiting = entry
        texts = [text for part, _ in waiting for text in part]
        self.observe(len(texts))
        try:
            results = list(self.classify(model, texts, key[1]))
        except Exception as exc:  # every waiting request gets the error its own call would have
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), chunk in zip(waiting, _split(results, [len(p) for p, _ in waiting]), strict=True):
            if not future.done():  # a request whose client went away is cancelled
                future.set_result(chunk)


def _split(results: list[Prediction], sizes: list[int]) -> Iterator[list[Prediction]]:
    start = 0
    for size in sizes:
        yield results[start : start + size]
        start += size
