"""The rate limiter every limit goes through: token buckets and fixed windows on a KV."""

from __future__ import annotations

from sluice.ingress.ratelimit import Rate as IngressRate
from sluice.ingress.ratelimit import RateLimiter as IngressRateLimiter
from sluice.kv.base import KV
from sluice.kv.limiter import KVRateLimiter, Rate, RateLimiter


class Wall:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestBuckets:
    async def test_a_bucket_grants_its_burst_then_says_when(self, kv: KV) -> None:
        """Burst tokens are granted at once; the next caller is told how long to wait."""
        limiter = KVRateLimiter(kv, "t:")
        rate = Rate(rate=1.0, burst=2.0)
        assert [await limiter.acquire("a", rate) for _ in range(2)] == [0.0, 0.0]
        assert 0.0 < await limiter.acquire("a", rate) <= 1.0
        assert await limiter.acquire("b", rate) == 0.0  # another key, another bucket

    async def test_buckets_live_under_the_prefix(self, kv: KV) -> None:
        """Two limiters with other prefixes on one KV do not share buckets."""
        rate = Rate(rate=1.0, burst=1.0)
        assert await KVRateLimiter(kv, "x:").acquire("a", rate) == 0.0
        assert await KVRateLimiter(kv, "y:").acquire("a", rate) == 0.0
        assert await KVRateLimiter(kv, "x:").acquire("a", rate) > 0.0

    def test_the_ingress_names_the_same_types(self) -> None:
        """The ingress's Rate and RateLimiter are the limiter's, not copies."""
        assert IngressRate is Rate
        assert IngressRateLimiter is RateLimiter


class TestWindows:
    async def test_a_window_refuses_once_its_limit_is_used(self, kv: KV) -> None:
        """Charges add up within a window; at the limit, the wait is to the window's end."""
        wall = Wall(6_000.0 + 15.0)  # 15 s into a minute
        limiter = KVRateLimiter(kv, "w:", clock=wall)
        assert await limiter.window_wait("acme", 100) == 0.0
        await limiter.charge("acme", 60)
        assert await limiter.window_wait("acme", 100) == 0.0
        await limiter.charge("acme", 40)
        assert await limiter.window_wait("acme", 100) == 45.0
        assert await limiter.window_wait("other", 100) == 0.0

    async def test_the_next_window_starts_empty(self, kv: KV) -> None:
        """A new window has nothing charged to it."""
        wall = Wall(6_000.0)
        limiter = KVRateLimiter(kv, "w:", clock=wall)
        await limiter.charge("acme", 100)
        assert await limiter.window_wait("acme", 100) > 0.0
        wall.now += 60.0
        assert await limiter.window_wait("acme", 100) == 0.0
