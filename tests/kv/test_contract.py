"""The KV contract: values and expiry, set-if-absent, counters, token buckets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sluice.ingress.ratelimit import Rate, RateLimiter
from sluice.kv.base import KV, KVError
from sluice.kv.limiter import KVRateLimiter

DEADLINE_S = 10.0  # generous: expiry is waited for, never timed


async def until(read: Callable[[], Awaitable[object]], expected: object) -> None:
    """Poll ``read`` until it returns ``expected``, failing after :data:`DEADLINE_S`."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while (got := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {got!r}"
        await asyncio.sleep(0.02)


class TestValues:
    async def test_get_set_delete(self, kv: KV) -> None:
        """A value reads back until deleted; absent keys read as None."""
        assert await kv.get("a") is None
        await kv.set("a", b"1")
        await kv.set("a", b"2")
        assert await kv.get("a") == b"2"
        assert await kv.delete("a") is True
        assert await kv.delete("a") is False
        assert await kv.get("a") is None

    async def test_values_expire(self, kv: KV) -> None:
        """A value with a TTL is gone after it; one without stays."""
        await kv.set("short", b"x", ttl_s=1.0)
        await kv.set("long", b"y")
        assert await kv.get("short") == b"x"
        await until(lambda: kv.get("short"), None)
        assert await kv.get("long") == b"y"


class TestSetIfAbsent:
    async def test_exactly_one_concurrent_caller_wins(self, kv: KV) -> None:
        """Of many concurrent set-if-absent calls on one key, exactly one stores."""
        results = await asyncio.gather(*(kv.set_if_absent("k", b"%d" % i, 5) for i in range(50)))
        assert results.count(True) == 1
        winner = results.index(True)
        assert await kv.get("k") == b"%d" % winner

    async def test_the_key_is_free_again_after_its_ttl(self, kv: KV) -> None:
        """Set-if-absent succeeds again once the first claim expired."""
        assert await kv.set_if_absent("k", b"1", ttl_s=1.0) is True
        assert await kv.set_if_absent("k", b"2", ttl_s=1.0) is False
        await until(lambda: kv.set_if_absent("k", b"3", ttl_s=1.0), True)
        assert await kv.get("k") == b"3"


class TestCounters:
    async def test_concurrent_increments_all_count(self, kv: KV) -> None:
        """Concurrent increments are atomic."""
        await asyncio.gather(*(kv.incr("n", 3, ttl_s=5) for _ in range(40)))
        assert await kv.incr("n", 0) == 120
        assert await kv.get("n") == b"120"

    async def test_the_window_starts_when_the_counter_is_created(self, kv: KV) -> None:
        """A counter's TTL is set once, at creation; later increments do not extend it.

        Increments every 0.1 s against a 0.5 s TTL: were each to extend it, the counter would
        never expire and never start again at 1. (A stalled machine can only make it expire
        sooner, so this cannot fail for being slow.)"""
        assert await kv.incr("w", 1, ttl_s=0.5) == 1
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while (n := await kv.incr("w", 1, ttl_s=0.5)) != 1:
            assert n > 1
            assert asyncio.get_running_loop().time() < deadline, f"still counting at {n}"
            await asyncio.sleep(0.1)


class TestTokenBucket:
    async def test_a_full_bucket_grants_exactly_its_burst(self, kv: KV) -> None:
        """Concurrent takes on a bucket that barely refills grant exactly ``burst``."""
        grants = await asyncio.gather(*(kv.take("b", rate=0.01, burst=10) for _ in range(30)))
        assert sum(g.allowed for g in grants) == 10
        refused = [g for g in grants if not g.allowed]
        assert all(95 < g.retry_after <= 100 for g in refused)

    async def test_refill_at_the_rate(self, kv: KV) -> None:
        """An empty bucket grants again after retry_after, not before (one token a second:
        far longer than any stall between two calls)."""
        assert (await kv.take("r", rate=1, burst=1)).allowed
        denied = await kv.take("r", rate=1, burst=1)
        assert not denied.allowed
        assert 0 < denied.retry_after <= 1.0
        assert not (await kv.take("r", rate=1, burst=1)).allowed  # not before
        await asyncio.sleep(denied.retry_after + 0.01)
        assert (await kv.take("r", rate=1, burst=1)).allowed

    async def test_cost_and_remaining(self, kv: KV) -> None:
        """A take of cost c leaves burst - c tokens; a cost above the burst is refused."""
        grant = await kv.take("c", rate=0.01, burst=5, cost=3)
        assert grant.allowed
        assert grant.remaining == pytest.approx(2, abs=0.01)
        assert not (await kv.take("c", rate=0.01, burst=5, cost=3)).allowed
        with pytest.raises(KVError, match="exceeds the burst"):
            await kv.take("c", rate=1, burst=5, cost=6)

    async def test_buckets_are_per_key(self, kv: KV) -> None:
        """Tenants do not share buckets."""
        assert (await kv.take("tenant-a", rate=0.01, burst=1)).allowed
        assert (await kv.take("tenant-b", rate=0.01, burst=1)).allowed
        assert not (await kv.take("tenant-a", rate=0.01, burst=1)).allowed


class TestRateLimiter:
    async def test_fits_the_ingress_limiter_protocol(self, kv: KV) -> None:
        """The KV limiter grants the burst, then answers with the wait for the next token."""
        limiter: RateLimiter = KVRateLimiter(kv)
        rate = Rate(rate=1, burst=2)  # a token a second: no stall between calls refills one
        assert [await limiter.acquire("acme/triage", rate) for _ in range(2)] == [0.0, 0.0]
        assert 0 < await limiter.acquire("acme/triage", rate) <= 1.0
        assert await limiter.acquire("other/triage", rate) == 0.0
