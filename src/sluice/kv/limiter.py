"""A rate limiter on a KV: the ingress's per-tenant limits, shared by every gateway process.

:class:`KVRateLimiter` fits :class:`sluice.ingress.ratelimit.RateLimiter`: given a
:class:`~sluice.kv.fallback.FallbackKV` over Redis, every ``sluice serve`` gateway draws from the
same buckets (per tenant, and per tenant and workflow where set), so a limit holds across the
fleet, and while Redis is away each process limits on its own.
"""

from __future__ import annotations

from typing import Protocol

from sluice.kv.base import KV


class RateLike(Protocol):
    """Anything with a rate (tokens per second) and a burst (bucket size)."""

    @property
    def rate(self) -> float:
        """Tokens per second."""
        ...

    @property
    def burst(self) -> float:
        """The most tokens saved up."""
        ...


class KVRateLimiter:
    """Token buckets kept in a KV under ``prefix`` + key."""

    def __init__(self, kv: KV, prefix: str = "rate:") -> None:
        self.kv = kv
        self.prefix = prefix

    async def acquire(self, key: str, rate: RateLike) -> float:
        """0.0 when a token was taken; otherwise seconds until the next token."""
        grant = await self.kv.take(self.prefix + key, rate.rate, rate.burst)
        return 0.0 if grant.allowed else max(grant.retry_after, 0.001)
