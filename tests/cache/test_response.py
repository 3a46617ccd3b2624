"""The response cache in front of a model: hits, misses, TTL, versions, single flight."""

from __future__ import annotations

import asyncio

import pytest

from sluice.cache import CachedModel, MemoryBackend, ResponseCache
from sluice.models.base import ModelRequest
from sluice.testing import ManualClock
from tests.cache.conftest import KeywordModel


def cached(clock: ManualClock, model: KeywordModel, ttl_s: float = 60, **kw: bool) -> CachedModel:
    """A model behind a fresh response cache."""
    return ResponseCache(MemoryBackend(100, clock=clock), ttl_s=ttl_s).wrap(model, **kw)


class TestHitsAndMisses:
    async def test_second_call_is_a_free_hit(self, clock: ManualClock) -> None:
        """The same request is answered once by the model; the hit costs nothing."""
        model = KeywordModel()
        front = cached(clock, model)
        first = await front.predict(ModelRequest("my card is late"))
        second = await front.predict(ModelRequest("  my card is   late"))
        assert model.calls == 1
        assert (second.label, second.confidence, second.output) == (
            first.label,
            first.confidence,
            first.output,
        )
        assert (first.cost, second.cost) == (0.002, 0.0)
        assert second.usage.input_tokens == 0
        assert second.latency_ms < first.latency_ms
        stats = front.cache.stats()
        assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)
        assert stats.hit_rate == 0.5

    async def test_params_and_versions_miss(self, clock: ManualClock) -> None:
        """Other parameters, or a new model version, ask the model again."""
        cache = ResponseCache(MemoryBackend(100, clock=clock))
        v1, v2 = KeywordModel("1"), KeywordModel("2")
        await cache.wrap(v1).predict(ModelRequest("card"))
        await cache.wrap(v1).predict(ModelRequest("card", params={"temperature": 1}))
        await cache.wrap(v2).predict(ModelRequest("card"))
        assert (v1.calls, v2.calls) == (2, 1)
        assert cache.stats().misses == 3

    async def test_case_folds_only_when_declared(self, clock: ManualClock) -> None:
        """Case variants hit only for a model wrapped with casefold=True."""
        sensitive, uncased = KeywordModel(), KeywordModel()
        a, b = ModelRequest("Card LOST"), ModelRequest("card lost")
        front = cached(clock, sensitive)
        await front.predict(a)
        await front.predict(b)
        folded = cached(clock, uncased, casefold=True)
        await folded.predict(a)
        await folded.predict(b)
        assert (sensitive.calls, uncased.calls) == (2, 1)


class TestExpiryAndErrors:
    async def test_ttl_expiry(self, clock: ManualClock) -> None:
        """After the TTL the model is asked again and the expiry is counted."""
        model = KeywordModel()
        front = cached(clock, model, ttl_s=10)
        await front.predict(ModelRequest("card"))
        clock.advance(11)
        await front.predict(ModelRequest("card"))
        assert model.calls == 2
        assert front.cache.stats().expirations == 1

    async def test_lru_bound(self, clock: ManualClock) -> None:
        """A full cache evicts, and the evicted answer is asked for again."""
        model = KeywordModel()
        front = ResponseCache(MemoryBackend(2, clock=clock)).wrap(model)
        for text in ("a", "b", "c", "a"):
            await front.predict(ModelRequest(text))
        assert model.calls == 4
        stats = front.cache.stats()
        assert (stats.entries, stats.evictions) == (2, 2)

    async def test_errors_are_not_cached(self, clock: ManualClock) -> None:
        """A failed call raises, and the next identical request asks the model again."""
        model = KeywordModel()
        front = cached(clock, model)
        model.fail_next = True
        with pytest.raises(ConnectionError):
            await front.predict(ModelRequest("card"))
        result = await front.predict(ModelRequest("card"))
        assert result.label == "card_arrival"
        assert model.calls == 2


class TestSingleFlight:
    async def test_concurrent_misses_share_one_call(self, clock: ManualClock) -> None:
        """Five identical requests at once cost one model call."""
        model = KeywordModel(delay=0.05)
        front = cached(clock, model)
        results = await asyncio.gather(*(front.predict(ModelRequest("card")) for _ in range(5)))
        assert model.calls == 1
        assert {r.label for r in results} == {"card_arrival"}

    async def test_followers_see_the_leaders_error(self, clock: ManualClock) -> None:
        """When the shared call fails, every waiter gets the error, and nothing is cached."""
        model = KeywordModel(delay=0.05)
        model.fail_next = True
        front = cached(clock, model)
        results = await asyncio.gather(
            *(front.predict(ModelRequest("card")) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        assert model.calls == 1
        assert front.cache.stats().entries == 0

    async def test_cancelled_leader_does_not_strand_followers(self, clock: ManualClock) -> None:
        """If the first caller is cancelled, a waiting caller still gets an answer."""
        model = KeywordModel(delay=0.05)
        front = cached(clock, model)
        leader = asyncio.create_task(front.predict(ModelRequest("card")))
        await asyncio.sleep(0.01)
        follower = asyncio.create_task(front.predict(ModelRequest("card")))
        await asyncio.sleep(0.01)
        leader.cancel()
        result = await follower
        assert result.label == "card_arrival"
        assert leader.cancelled()
