"""Requests that arrive together are scored as one batch, each getting its own results."""

from __future__ import annotations

import asyncio

import pytest

from tagloop.api.coalesce import Coalescer
from tagloop.domain.predictions import Prediction
from tagloop.errors import InvalidRequest
from tagloop.services.training import TrainRequest


def said(predictions: list[Prediction]) -> list[tuple[object, ...]]:
    """What predictions say, comparable (two errors of one kind and message are the same)."""
    return [(p.labels, p.scores, p.mode, type(p.error), p.error and p.error.message) for p in predictions]


@pytest.fixture
def desk(make_tagloop, tickets_csv):
    tagloop = make_tagloop()
    tagloop.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
    _, model = tagloop.predictions.model("desk")
    return tagloop, model


def test_requests_of_one_turn_share_a_batch_and_get_their_own_results(desk):
    tagloop, model = desk
    batches: list[int] = []
    coalescer = Coalescer(tagloop.predictions.classify, observe=batches.append)
    requests = [["the printer is jammed"], ["refund my invoice", "vpn drops"], [""], ["mailbox is full"]]

    async def main():
        return await asyncio.gather(*(coalescer(model, texts) for texts in requests))

    answers = asyncio.run(main())
    assert batches == [5]  # one model call for all five documents
    for texts, answer in zip(requests, answers, strict=True):
        alone = list(tagloop.predictions.classify(model, texts))
        assert said(answer) == said(alone)  # same as scored alone
    assert answers[0][0].labels[0] == "HARDWARE"
    assert type(answers[2][0].error) is InvalidRequest  # per text, not per batch


def test_requests_asking_for_different_top_classes_get_them(desk):
    tagloop, model = desk
    batches: list[int] = []
    coalescer = Coalescer(tagloop.predictions.classify, observe=batches.append)
    tops = [None, 1, 2, 1, None]

    async def main():
        return await asyncio.gather(*(coalescer(model, ["the printer is jammed"], top) for top in tops))

    answers = asyncio.run(main())
    every = len(model.labels)
    assert [len(answer[0].labels) for answer in answers] == [every, 1, 2, 1, every]
    assert len(batches) == 3  # one model call for each number of classes asked for
    assert answers[1][0].labels == answers[0][0].labels[:1]
    assert answers[1][0].scores == answers[0][0].scores[:1]


def test_a_lone_request_and_later_turns_get_batches_of_their_own(desk):
    tagloop, model = desk
    batches: list[int] = []
    coalescer = Coalescer(tagloop.predictions.classify, max_documents=2, observe=batches.append)

    async def main():
        first = await coalescer(model, ["wifi is down"])
        rest = await asyncio.gather(*(coalescer(model, [f"printer {i}"]) for i in range(5)))
        return first, rest

    first, rest = asyncio.run(main())
    assert first[0].labels[0] == "NETWORK"
    assert len(rest) == 5 and sum(batches) == 6
    assert batches == [1, 2, 2, 1]  # the lone request, then at most two documents a batch


def test_a_failing_batch_fails_every_request_in_it(desk):
    _, model = desk

    def broken(model, texts, top):
        raise RuntimeError("scoring failed")

    coalescer = Coalescer(broken)

    async def main():
        return await asyncio.gather(*(coalescer(model, ["x"]) for _ in range(3)), return_exceptions=True)

    errors = asyncio.run(main())
    assert [str(error) for error in errors] == ["scoring failed"] * 3
