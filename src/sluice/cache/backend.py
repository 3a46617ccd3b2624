"""The cache backend port: bytes under string keys, each with an optional time to live.

Caches (:mod:`sluice.cache.response`, :mod:`sluice.cache.retrieval`) decide *what* to store
and under which key; a backend decides *where*. Values are bytes so that one process's
in-memory backend and a shared network store (Redis through ``sluice.kv``) hold the same
thing, and so that a caller can never mutate a cached value in place.

:class:`MemoryBackend` is the embedded implementation: an LRU bounded by entry count and by
total value bytes, with per-entry expiry checked on read.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sluice.cache.errors import CacheConfigError


@dataclass(frozen=True, slots=True)
class BackendStats:
    """What a backend knows about itself: entries held, bytes held, entries pushed out.

    ``errors`` counts calls to a remote store that failed (and were served as misses).
    """

    entries: int
    bytes: int
    evictions: int
    expirations: int
    errors: int = 0


class CacheBackend(Protocol):
    """Where cached values live. Every method is async so a network store fits behind it."""

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None`` when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds (``None``: until evicted)."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key`` (absent keys are fine)."""
        ...

    async def clear(self) -> None:
        """Forget everything."""
        ...

    def stats(self) -> BackendStats:
        """Entries, bytes, evictions and expirations, as far as this backend can tell."""
        ...


class MemoryBackend:
    """An in-process LRU with TTLs, bounded by ``max_entries`` and ``max_bytes``.

    ``clock`` is injectable (monotonic seconds) so expiry can be tested without sleeping.
    Not thread-safe: it is used from one event loop, where no await happens mid-operation.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise CacheConfigError(
                f"cache bounds must be positive: max_entries={max_entries}, max_bytes={max_bytes}"
            )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        # key -> (value, expires_at or None); order is recency, oldest first.
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0
        self._evictions = 0
        self._expirations = 0

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, refreshed as most recently used; ``None`` if absent/expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= self._clock():
            self._drop(key)
            self._expirations += 1
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        """Store ``value``; evict least recently used entries until both bounds hold."""
        if ttl_s is not None and ttl_s <= 0:
            await self.delete(key)
            return
        if len(value) > self.max_bytes:
            # Larger than the whole cache: storing it would evict everything for one entry.
            await self.delete(key)
            return
        if key in self._entries:
            self._drop(key)
        expires_at = None if ttl_s is None else self._clock() + ttl_s
        self._entries[key] = (value, expires_at)
        self._bytes += len(value)
        if len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._make_room()

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        if key in self._entries:
            self._drop(key)

    async def clear(self) -> None:
        """Forget everything (counters are kept)."""
        self._entries.clear()
        self._bytes = 0

    def stats(self) -> BackendStats:
        """Entries and bytes held, evictions and expirations so far."""
        return BackendStats(len(self._entries), self._bytes, self._evictions, self._expirations)

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self._bytes -= len(value)

    def _make_room(self) -> None:
        # Least recently used first. Expired entries are not hunted for: with one TTL per cache
        # they are the oldest anyway, and a scan would make every insert at capacity O(n).
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self._evictions += 1
