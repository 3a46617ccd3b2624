"""The AI gateway's response cache: complete chat answers, as the provider sent them.

The key is the gateway's (:func:`sluice.cache.keys.stable_hash` of the request's fields that
shape the answer); the value is the completion's JSON, replayed as it is or as events. The
backend is any :class:`~sluice.cache.backend.CacheBackend`: in process, or on the app's KV so
that every gateway process behind a load balancer answers a repeat from one cache.
"""

from __future__ import annotations

from sluice.cache.backend import CacheBackend
from sluice.cache.errors import CacheConfigError
from sluice.cache.stats import CacheStats, Counters

#: Default time to live of a cached completion.
DEFAULT_COMPLETION_TTL_S = 300.0


class CompletionCache:
    """Completions in a :class:`CacheBackend`, with a TTL and hit/miss counts."""

    def __init__(
        self, backend: CacheBackend, *, ttl_s: float | None = DEFAULT_COMPLETION_TTL_S
    ) -> None:
        if ttl_s is not None and ttl_s <= 0:
            raise CacheConfigError(f"completion cache ttl_s must be positive, got {ttl_s}")
        self.backend = backend
        self.ttl_s = ttl_s
        self._counters = Counters()

    async def get(self, key: str) -> bytes | None:
        """The completion under ``key`` (a hit), or ``None`` (a miss)."""
        value = await self.backend.get(key)
        if value is None:
            self._counters.misses += 1
        else:
            self._counters.hits += 1
        return value

    async def put(self, key: str, completion: bytes) -> None:
        """Keep ``completion`` for the cache's TTL."""
        await self.backend.set(key, completion, self.ttl_s)

    def stats(self) -> CacheStats:
        """Hits, misses and what the backend holds."""
        return self._counters.snapshot(self.backend.stats())
