"""The cache backend contract: every backend a cache can sit on behaves the same.

Run on the in-process LRU (:class:`~sluice.cache.backend.MemoryBackend`) and on the KV backend
(:class:`~sluice.cache.kv_backend.KVBackend`) over the in-process KV and over real Redis
(``SLUICE_TEST_REDIS``; a missing server fails these tests rather than skipping them), as the
store and KV contract suites run on each of their implementations. What only one backend
does (LRU eviction, breakers around a dying Redis) is tested beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sluice.cache.backend import BackendStats, CacheBackend, MemoryBackend
from sluice.cache.completions import CompletionCache
from sluice.cache.kv_backend import KVBackend
from sluice.kv.memory import MemoryKV
from tests.kv.conftest import new_prefix, patient_redis

#: The largest value every backend under test stores.
CAP = 1024
DEADLINE_S = 10.0  # generous: expiry is waited for, never timed


async def until(read: Callable[[], Awaitable[object]], expected: object) -> None:
    """Poll ``read`` until it returns ``expected``, failing after :data:`DEADLINE_S`."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while (got := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {got!r}"
        await asyncio.sleep(0.02)


@pytest.fixture(params=["memory", "kv-memory", "kv-redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[CacheBackend]:
    """An empty backend of each kind, storing values up to :data:`CAP` bytes."""
    if request.param == "memory":
        yield MemoryBackend(100, max_bytes=CAP)
        return
    if request.param == "kv-memory":
        async with MemoryKV() as kv:
            yield KVBackend(kv, name="contract", max_value_bytes=CAP)
        return
    redis_kv = patient_redis(new_prefix())
    await redis_kv.open()
    try:
        # A patient call bound too: the contract is about values, not a loaded machine's
        # latency (the 250 ms production bound is tested in test_kv_backend.py).
        yield KVBackend(redis_kv, name="contract", max_value_bytes=CAP, timeout_s=10)
    finally:
        await redis_kv.delete_prefix()
        await redis_kv.aclose()


class TestValues:
    async def test_absent_keys_are_misses(self, backend: CacheBackend) -> None:
        """A key never set reads as None."""
        assert await backend.get("nothing") is None

    async def test_set_get_overwrite_delete(self, backend: CacheBackend) -> None:
        """A value reads back as it was stored, the last one wins, and delete forgets it."""
        await backend.set("k", b"first", 60)
        assert await backend.get("k") == b"first"
        await backend.set("k", b"second", 60)
        assert await backend.get("k") == b"second"
        await backend.delete("k")
        assert await backend.get("k") is None
        await backend.delete("k")  # absent: fine

    async def test_keys_are_independent(self, backend: CacheBackend) -> None:
        """Values under many keys, written concurrently, each read back their own."""
        await asyncio.gather(*(backend.set(f"k{i}", b"%d" % i, 60) for i in range(20)))
        got = await asyncio.gather(*(backend.get(f"k{i}") for i in range(20)))
        assert got == [b"%d" % i for i in range(20)]

    async def test_bytes_of_any_value_round_trip(self, backend: CacheBackend) -> None:
        """Values are opaque bytes: NULs, high bytes and the empty value survive."""
        odd = bytes(range(256))
        await backend.set("odd", odd, 60)
        await backend.set("empty", b"", 60)
        assert await backend.get("odd") == odd
        assert await backend.get("empty") == b""


class TestExpiry:
    async def test_entries_expire_after_their_ttl(self, backend: CacheBackend) -> None:
        """An entry with a short TTL is gone after it; a long-lived one stays."""
        await backend.set("short", b"x", 0.5)
        await backend.set("long", b"y", 60)
        assert await backend.get("short") == b"x"
        await until(lambda: backend.get("short"), None)
        assert await backend.get("long") == b"y"

    async def test_no_ttl_means_until_evicted(self, backend: CacheBackend) -> None:
        """``ttl_s=None`` stores the value (a shared store applies its own cap)."""
        await backend.set("k", b"v", None)
        assert await backend.get("k") == b"v"

    async def test_a_ttl_of_zero_forgets_the_key(self, backend: CacheBackend) -> None:
        """Setting with a TTL of zero or less removes what the key held."""
        await backend.set("k", b"v", 60)
        await backend.set("k", b"w", 0)
        assert await backend.get("k") is None


class TestBounds:
    async def test_a_value_over_the_cap_is_not_stored(self, backend: CacheBackend) -> None:
        """Too large a value is dropped, and the key does not serve its older value."""
        await backend.set("k", b"small", 60)
        await backend.set("k", b"x" * (CAP + 1), 60)
        assert await backend.get("k") is None
        await backend.set("fits", b"x" * CAP, 60)
        assert await backend.get("fits") == b"x" * CAP


class TestClearAndStats:
    async def test_clear_forgets_everything(self, backend: CacheBackend) -> None:
        """After clear no earlier key is served; new values are stored as before."""
        await backend.set("a", b"1", 60)
        await backend.set("b", b"2", 60)
        await backend.clear()
        assert await backend.get("a") is None
        assert await backend.get("b") is None
        await backend.set("a", b"3", 60)
        assert await backend.get("a") == b"3"

    async def test_stats_of_a_healthy_backend(self, backend: CacheBackend) -> None:
        """Stats are a BackendStats with no errors while the store answers."""
        await backend.set("k", b"v", 60)
        await backend.get("k")
        stats = backend.stats()
        assert isinstance(stats, BackendStats)
        assert stats.errors == 0
        assert stats.entries >= 0
        assert stats.bytes >= 0


class TestCacheOnTheBackend:
    async def test_completion_cache_counts_hits_and_misses(self, backend: CacheBackend) -> None:
        """The AI gateway's cache works the same on every backend."""
        cache = CompletionCache(backend, ttl_s=60)
        assert await cache.get("q") is None
        await cache.put("q", b'{"id": "c1"}')
        assert await cache.get("q") == b'{"id": "c1"}'
        stats = cache.stats()
        assert (stats.hits, stats.misses) == (1, 1)
