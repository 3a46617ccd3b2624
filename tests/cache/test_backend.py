"""The in-memory backend: LRU bounds, TTL expiry, counters."""

from __future__ import annotations

import pytest

from sluice.cache import CacheConfigError, MemoryBackend
from sluice.testing import ManualClock


class TestLru:
    async def test_entry_bound_evicts_least_recently_used(self) -> None:
        """Past max_entries the least recently *used* entry goes, not the oldest written."""
        backend = MemoryBackend(3)
        for key in "abc":
            await backend.set(key, key.encode(), None)
        assert await backend.get("a") == b"a"  # a is now the most recent
        await backend.set("d", b"d", None)
        assert await backend.get("b") is None
        assert [await backend.get(k) for k in "acd"] == [b"a", b"c", b"d"]
        stats = backend.stats()
        assert (stats.entries, stats.evictions) == (3, 1)

    async def test_byte_bound(self) -> None:
        """Past max_bytes entries are evicted until the values fit."""
        backend = MemoryBackend(100, max_bytes=10)
        await backend.set("a", b"12345", None)
        await backend.set("b", b"12345", None)
        await backend.set("c", b"123", None)
        assert await backend.get("a") is None
        stats = backend.stats()
        assert (stats.entries, stats.bytes, stats.evictions) == (2, 8, 1)

    async def test_oversized_value_is_not_stored(self) -> None:
        """A value larger than the whole cache is dropped instead of flushing everything."""
        backend = MemoryBackend(100, max_bytes=10)
        await backend.set("a", b"1234", None)
        await backend.set("big", b"x" * 11, None)
        assert await backend.get("big") is None
        assert await backend.get("a") == b"1234"

    async def test_overwrite_keeps_byte_count(self) -> None:
        """Writing a key again replaces its value and its bytes."""
        backend = MemoryBackend(10)
        await backend.set("a", b"1234", None)
        await backend.set("a", b"12", None)
        assert backend.stats().bytes == 2
        await backend.delete("a")
        await backend.delete("a")
        assert backend.stats().entries == 0

    def test_bounds_must_be_positive(self) -> None:
        """A zero bound is a configuration error."""
        with pytest.raises(CacheConfigError, match="max_entries=0"):
            MemoryBackend(0)


class TestTtl:
    async def test_entry_expires(self, clock: ManualClock) -> None:
        """An entry is served until its TTL passes, then counted as expired."""
        backend = MemoryBackend(10, clock=clock)
        await backend.set("a", b"1", 30)
        clock.advance(29.9)
        assert await backend.get("a") == b"1"
        clock.advance(0.2)
        assert await backend.get("a") is None
        stats = backend.stats()
        assert (stats.entries, stats.expirations, stats.evictions) == (0, 1, 0)

    async def test_no_ttl_lives_until_evicted(self, clock: ManualClock) -> None:
        """ttl None never expires."""
        backend = MemoryBackend(10, clock=clock)
        await backend.set("a", b"1", None)
        clock.advance(10**9)
        assert await backend.get("a") == b"1"

    async def test_non_positive_ttl_deletes(self, clock: ManualClock) -> None:
        """Setting with ttl <= 0 removes the key instead of storing a dead entry."""
        backend = MemoryBackend(10, clock=clock)
        await backend.set("a", b"1", None)
        await backend.set("a", b"2", 0)
        assert await backend.get("a") is None
        await backend.clear()
        assert len(backend) == 0
