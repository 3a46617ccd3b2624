"""The rate limiter: token buckets and fixed windows on a KV, shared by every process.

One API for every limit Sluice enforces: the ingress's per-tenant and per-workflow buckets
(:mod:`sluice.ingress.ratelimit` decides which buckets a request draws from) and the AI
gateway's request buckets and tokens-per-minute windows (:mod:`sluice.gateway.proxy`).
Given a :class:`~sluice.kv.fallback.FallbackKV` over Redis, every process draws from the same
buckets, so a limit holds across the fleet, and while Redis is away each process limits on
its own. Each user keeps its keys under a ``prefix`` of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sluice.kv.base import KV


@dataclass(frozen=True, slots=True)
class Rate:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float


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


class RateLimiter(Protocol):
    """Takes one token for a key, or says how long until one is free."""

    async def acquire(self, key: str, rate: Rate) -> float:
        """0.0 when a token was taken; otherwise seconds until the next token."""
        ...


class KVRateLimiter:
    """Token buckets and fixed windows kept in a KV under ``prefix`` + key.

    ``clock`` (wall-clock seconds) places fixed windows; it is injectable for tests.
    """

    def __init__(
        self, kv: KV, prefix: str = "rate:", *, clock: Callable[[], float] = time.time
    ) -> None:
        self.kv = kv
        self.prefix = prefix
        self._clock = clock

    async def acquire(self, key: str, rate: RateLike) -> float:
        """0.0 when a token was taken; otherwise seconds until the next token."""
        grant = await self.kv.take(self.prefix + key, rate.rate, rate.burst)
        return 0.0 if grant.allowed else max(grant.retry_after, 0.001)

    async def window_wait(self, key: str, limit: int, window_s: float = 60.0) -> float:
        """0.0 while the current window of ``key`` has used less than ``limit``; otherwise
        seconds until the next window opens."""
        now = self._clock()
        used = await self.kv.get(self._window(key, now, window_s))
        if used is not None and int(used) >= limit:
            return window_s - now % window_s
        return 0.0

    async def charge(self, key: str, amount: int, window_s: float = 60.0) -> None:
        """Count ``amount`` against the current window of ``key``."""
        # Kept for two windows, so a window read just as it ends still finds its count.
        window = self._window(key, self._clock(), window_s)
        await self.kv.incr(window, amount, 2 * window_s)

    def _window(self, key: str, now: float, window_s: float) -> str:
        return f"{self.prefix}{key}:{int(now // window_s)}"
