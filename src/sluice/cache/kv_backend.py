"""A cache backend on the app's KV: with Redis, one cache shared by every process.

``caches: {responses: {backend: kv}}`` puts a cache on :class:`KVBackend`. Entries live in the
KV under ``prefix`` + the cache key, each with a TTL (a shared store is bounded by expiry and
by its own memory policy, not by this process), and values larger than ``max_value_bytes``
are not stored (one huge answer would cost every reader a large transfer).

The cache is an optimisation, so losing its store must never fail a request:

* a ``get`` that fails is a miss, a ``set`` or ``delete`` that fails is dropped; each failure
  is counted (``errors`` in the cache's stats, hence in ``/v1/status`` and ``/metrics``) and
  logged at most once per ``log_every_s`` with the count since the last line;
* every call is bounded by ``timeout_s``, whatever the KV client's own timeouts are;
* after ``failure_threshold`` consecutive failures a
  :class:`~sluice.reliability.breaker.CircuitBreaker` (``cache:NAME``) opens and the store is
  not asked at all for ``open_s``: requests run uncached at full speed instead of each paying
  a failed connect. Then one probe goes through; when it succeeds, caching resumes.

**With a FallbackKV** (``SLUICE_KV=redis://...``, the default for Redis) the cache talks to
the Redis side only and goes *uncached* while Redis is away, instead of following the
fallback to the in-process KV. That local KV holds the process's rate-limit buckets and
spend ledgers in an LRU bounded by key count: tens of thousands of cached answers would push
those out (resetting limits) and its bound says nothing of bytes, so ``max_mb`` would not
hold. An outage is short and rare; running uncached for its length costs model time, not
correctness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sluice.cache.backend import BackendStats
from sluice.cache.errors import CacheConfigError
from sluice.kv.base import KV
from sluice.kv.fallback import FallbackKV
from sluice.kv.memory import MemoryKV
from sluice.reliability.breaker import BreakerSettings, CircuitBreaker
from sluice.reliability.retry_budget import Clock

T = TypeVar("T")
log = logging.getLogger("sluice.cache")

#: Breaker of a cache store: opens fast (three failures in a row: a cache call is cheap to
#: give up on) and probes again after a few seconds, so an outage costs a handful of failed
#: calls per ``open_s`` and caching resumes within ``open_s`` of the store's return.
CACHE_BREAKER = BreakerSettings(failure_threshold=3, error_rate=0.5, min_requests=20, open_s=5.0)

#: Largest value stored by default: model answers and neighbour lists are a few KB.
DEFAULT_MAX_VALUE_BYTES = 256 * 1024

#: TTL used when a cache asks for none: a shared store must not keep entries forever.
DEFAULT_MAX_TTL_S = 86_400.0


def shared_store(kv: KV) -> KV:
    """The store a KV cache should use: the shared side of a FallbackKV (see module docs)."""
    return kv.primary if isinstance(kv, FallbackKV) else kv


def is_shared(kv: KV) -> bool:
    """Whether ``kv`` is shared between processes (Redis), not this process's own memory."""
    return not isinstance(shared_store(kv), MemoryKV)


class KVBackend:
    """:class:`~sluice.cache.backend.CacheBackend` over a :class:`~sluice.kv.base.KV`.

    ``entries`` and ``bytes`` in :meth:`stats` are 0: a shared store's size is not this
    process's to know. ``clear`` only forgets for this process (see :meth:`clear`).
    """

    def __init__(
        self,
        kv: KV,
        *,
        name: str = "cache",
        prefix: str = "cache:",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_ttl_s: float = DEFAULT_MAX_TTL_S,
        timeout_s: float = 0.25,
        breaker: CircuitBreaker | None = None,
        log_every_s: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_value_bytes < 1 or max_ttl_s <= 0 or timeout_s <= 0:
            raise CacheConfigError(
                "KV cache bounds must be positive: "
                f"max_value_bytes={max_value_bytes}, max_ttl_s={max_ttl_s}, timeout_s={timeout_s}"
            )
        self.kv = shared_store(kv)
        self.name = name
        self.prefix = prefix
        self.max_value_bytes = max_value_bytes
        self.max_ttl_s = max_ttl_s
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker(f"cache:{name}", CACHE_BREAKER, clock=clock)
        self._log_every_s = log_every_s
        self._clock = clock
        self._epoch = 0
        self.errors = 0
        #: Calls not made because the breaker was open.
        self.bypassed = 0
        #: Values not stored because they exceed ``max_value_bytes``.
        self.too_large = 0
        self._unlogged = 0
        self._logged_at: float | None = None

    def _key(self, key: str) -> str:
        return f"{self.prefix}{self._epoch}:{key}" if self._epoch else self.prefix + key

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``; ``None`` when absent, expired, or the store failed."""
        return await self._guarded("get", lambda: self.kv.get(self._key(key)), None)

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        """Store ``value`` for ``ttl_s`` (at most ``max_ttl_s``); dropped if the store fails."""
        if ttl_s is not None and ttl_s <= 0:
            await self.delete(key)
            return
        if len(value) > self.max_value_bytes:
            # Not stored, and what the key held is no answer to it any more.
            self.too_large += 1
            await self.delete(key)
            return
        ttl = self.max_ttl_s if ttl_s is None else min(ttl_s, self.max_ttl_s)
        await self._guarded("set", lambda: self.kv.set(self._key(key), value, ttl), None)

    async def delete(self, key: str) -> None:
        """Forget ``key`` (best effort: a failure is counted, not raised)."""
        await self._guarded("delete", lambda: self.kv.delete(self._key(key)), False)

    async def clear(self) -> None:
        """Forget everything *for this process*: later keys get a new namespace.

        The KV protocol cannot list keys, and deleting a shared cache under other processes
        is not this process's call; the old entries age out by their TTL.
        """
        self._epoch += 1

    def stats(self) -> BackendStats:
        """Failures so far (``errors``); size figures are unknown for a shared store."""
        return BackendStats(entries=0, bytes=0, evictions=0, expirations=0, errors=self.errors)

    async def _guarded(self, op: str, call: Callable[[], Awaitable[T]], failed: T) -> T:
        if not self.breaker.allow():
            self.bypassed += 1
            return failed
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call()
        # Any failure of an optimisation is a miss, never the request's error; cancellation
        # (a BaseException) still propagates.
        except Exception as exc:  # noqa: BLE001 - a failing cache is a miss
            self.breaker.record(False)
            self._failed(op, exc)
            return failed
        self.breaker.record(True)
        return result

    def _failed(self, op: str, exc: Exception) -> None:
        self.errors += 1
        self._unlogged += 1
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._log_every_s:
            return
        what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        log.warning(
            "cache %s: %d store call(s) failed since the last report (running uncached while it"
            " lasts); last: %s %s",
            self.name,
            self._unlogged,
            op,
            what,
        )
        self._logged_at = now
        self._unlogged = 0
