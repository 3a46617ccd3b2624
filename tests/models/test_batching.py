"""Micro-batching: concurrent requests share one encoder call and get the same answers."""

from __future__ import annotations

import asyncio

from sluice.models.base import ModelRequest
from sluice.models.batching import MicroBatcher
from sluice.models.local import LocalClassifier
from sluice.models.splits import Example


async def test_concurrent_requests_are_batched(
    stacked_model: LocalClassifier, held_out: list[Example]
) -> None:
    """Twenty concurrent requests take fewer encoder calls and match the single path."""
    batcher = MicroBatcher(stacked_model, max_batch=8, max_wait_ms=20)
    texts = [e.text for e in held_out[:20]]
    results = await asyncio.gather(*(batcher.predict(ModelRequest(t)) for t in texts))
    assert batcher.requests == 20
    assert batcher.batches <= 5
    singles = [stacked_model.predict_one(t) for t in texts]
    assert [r.label for r in results] == [s.label for s in singles]
    for result, single in zip(results, singles, strict=True):
        assert abs(result.confidence - single.confidence) < 1e-6
        assert result.cost == stacked_model.price_per_call


async def test_a_lone_request_is_not_held_long(stacked_model: LocalClassifier) -> None:
    """One request is answered after at most the wait, in a batch of one."""
    batcher = MicroBatcher(stacked_model, max_batch=8, max_wait_ms=5)
    result = await asyncio.wait_for(batcher.predict(ModelRequest("my card has not arrived")), 5)
    assert result.label
    assert (batcher.batches, batcher.requests) == (1, 1)
