"""The KV cache backend on the memory KV and on real Redis, and a Redis that dies and returns.

Redis is reached at ``SLUICE_TEST_REDIS`` (default: the local server); a missing server fails
these tests rather than skipping them. The outage tests start a private ``redis-server`` on a
free port and SIGKILL it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from sluice.cache import (
    RESPONSE_CACHE,
    RETRIEVAL_CACHE,
    CacheConfigError,
    ResponseCache,
    RetrievalCache,
)
from sluice.cache.config import BACKEND_ENV, build_caches, parse_caches
from sluice.cache.kv_backend import CACHE_BREAKER, KVBackend
from sluice.kv.base import KV
from sluice.kv.fallback import FallbackKV
from sluice.kv.memory import MemoryKV
from sluice.kv.redis import RedisKV
from sluice.models.base import ModelRequest
from sluice.reliability.breaker import BreakerState
from sluice.telemetry.metrics import cache_gauges
from sluice.testing import ManualClock
from sluice.testing.redis_server import RedisServer
from tests.cache.conftest import KeywordModel
from tests.kv.conftest import patient_redis


@pytest.fixture(params=["memory", "redis"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KV]:
    """An open, empty KV of each kind (Redis under a prefix of this test's own)."""
    if request.param == "memory":
        async with MemoryKV() as impl:
            yield impl
        return
    redis_kv = patient_redis(f"test:{uuid.uuid4().hex[:12]}:")
    await redis_kv.open()
    try:
        yield redis_kv
    finally:
        await redis_kv.delete_prefix()
        await redis_kv.aclose()


class TestOnEveryKV:
    async def test_hits_misses_and_prefix(self, kv: KV) -> None:
        """Values round-trip under the prefix; absent keys are misses; nothing is an error."""
        backend = KVBackend(kv, prefix="c:")
        assert await backend.get("k") is None
        await backend.set("k", b"value", 60)
        assert await backend.get("k") == b"value"
        assert await kv.get("c:k") == b"value"  # where it lives in the KV
        await backend.delete("k")
        assert await backend.get("k") is None
        assert backend.stats().errors == 0

    async def test_ttl_expires_entries(self, kv: KV) -> None:
        """An entry is gone after its TTL, in the KV itself."""
        backend = KVBackend(kv)
        await backend.set("short", b"x", 0.05)
        await backend.set("long", b"y", 60)
        await asyncio.sleep(0.2)
        assert await backend.get("short") is None
        assert await backend.get("long") == b"y"

    async def test_values_over_the_cap_are_not_stored(self, kv: KV) -> None:
        """A value larger than max_value_bytes is skipped and counted, not an error."""
        backend = KVBackend(kv, max_value_bytes=8)
        await backend.set("big", b"123456789", 60)
        await backend.set("fits", b"12345678", 60)
        assert await backend.get("big") is None
        assert await backend.get("fits") == b"12345678"
        assert (backend.too_large, backend.stats().errors) == (1, 0)

    async def test_clear_forgets_for_this_process(self, kv: KV) -> None:
        """clear() gives the process a fresh namespace; the shared entries stay for others."""
        backend, other = KVBackend(kv), KVBackend(kv)
        await backend.set("k", b"v", 60)
        await backend.clear()
        assert await backend.get("k") is None
        assert await other.get("k") == b"v"

    async def test_response_cache_shared_between_two_caches(self, kv: KV) -> None:
        """Two caches (as in two processes) on one store: one model call answers both."""
        model = KeywordModel()
        first = ResponseCache(KVBackend(kv), ttl_s=60).wrap(model)
        second = ResponseCache(KVBackend(kv), ttl_s=60).wrap(model)
        request = ModelRequest(text="my card was stolen")
        answer = await first.predict(request)
        again = await second.predict(request)
        assert model.calls == 1
        assert (again.label, again.cost) == (answer.label, 0.0)
        assert second.cache.stats().hits == 1

    async def test_unreadable_values_are_misses(self, kv: KV) -> None:
        """A value this version cannot read (another version's, or damaged) is a miss, and
        the model's answer replaces it."""
        model = KeywordModel()
        cache = ResponseCache(KVBackend(kv, prefix="c:"), ttl_s=60)
        cached = cache.wrap(model)
        request = ModelRequest(text="my card was stolen")
        await kv.set("c:" + cached.key(request), b'{"model": "old-format"}')
        await cached.predict(request)
        again = await cached.predict(request)
        assert model.calls == 1
        assert again.cost == 0.0
        assert (cache.stats().misses, cache.stats().hits) == (1, 1)
        neighbours = RetrievalCache(KVBackend(kv, prefix="c:"), ttl_s=60)
        await kv.set("c:retr:bad", b"not json")
        await kv.set("c:retr:scalar", b"42")
        assert await neighbours.get("retr:bad") is None
        assert await neighbours.get("retr:scalar") is None
        assert neighbours.stats().misses == 2


class TestConfig:
    def test_backend_kv_is_selected_and_memory_stays_default(self) -> None:
        """backend: kv builds a KVBackend over the KV given; the other cache stays in memory."""
        kv = MemoryKV()
        caches = build_caches({"responses": {"backend": "kv", "ttl_s": 60, "prefix": "r:"}}, kv)
        backend = caches[RESPONSE_CACHE].backend
        assert isinstance(backend, KVBackend)
        assert (backend.kv, backend.prefix) == (kv, "r:")
        assert not isinstance(caches[RETRIEVAL_CACHE].backend, KVBackend)

    def test_environment_overrides_every_cache(self) -> None:
        """SLUICE_CACHE_BACKEND=kv puts both caches on the KV."""
        caches = build_caches({}, MemoryKV(), env={BACKEND_ENV: "kv"})
        assert all(isinstance(c.backend, KVBackend) for c in caches.values())

    def test_fallback_kv_caches_on_its_shared_side_only(self) -> None:
        """A FallbackKV's local side is not used for caching (uncached while Redis is away)."""
        primary = MemoryKV()
        caches = build_caches({"responses": {"backend": "kv"}}, FallbackKV(primary))
        backend = caches[RESPONSE_CACHE].backend
        assert isinstance(backend, KVBackend)
        assert backend.kv is primary

    def test_bad_settings_are_reported_with_paths(self) -> None:
        """Unknown backends, endless TTLs on a shared store and bad caps are all reported."""
        with pytest.raises(CacheConfigError) as err:
            parse_caches(
                {
                    "responses": {"backend": "disk"},
                    "retrieval": {"backend": "kv", "ttl_s": None, "max_value_kb": 0},
                }
            )
        assert err.value.problems == [
            "caches.responses.backend: expected one of memory, kv",
            "caches.retrieval.max_value_kb: expected a positive number",
            "caches.retrieval.ttl_s: backend kv needs a TTL of at most 86400 s"
            " (a shared store keeps entries until they expire)",
        ]
        with pytest.raises(CacheConfigError, match=BACKEND_ENV):
            parse_caches({}, backend="redis")
        with pytest.raises(CacheConfigError, match="no KV"):
            build_caches({"responses": {"backend": "kv"}})


class TestLostRedis:
    async def test_killed_redis_means_misses_then_caching_resumes(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """SIGKILL the store: gets miss without raising, the breaker stops the calls, and
        after the server returns (and open_s passes) values are stored and found again."""
        clock = ManualClock()
        with RedisServer() as server:
            redis_kv = RedisKV(server.url, prefix="c:", cooldown_s=0.01)
            await redis_kv.open()
            backend = KVBackend(redis_kv, clock=clock, log_every_s=10)
            cache = ResponseCache(backend, ttl_s=60)
            model = KeywordModel()
            cached = cache.wrap(model)
            request = ModelRequest(text="card not working")
            try:
                await cached.predict(request)
                await cached.predict(request)
                assert (model.calls, cache.stats().hits) == (1, 1)

                server.kill()
                with caplog.at_level(logging.WARNING, logger="sluice.cache"):
                    for _ in range(20):
                        answer = await cached.predict(request)  # never raises
                assert answer.label == "card_arrival"
                assert model.calls == 21  # uncached while the store is gone
                # Only the calls before the breaker opened reached the dead store; each
                # failed lookup also tried (and failed) to store the model's answer.
                assert backend.breaker.state is BreakerState.OPEN
                assert backend.stats().errors == CACHE_BREAKER.failure_threshold
                assert backend.bypassed == 2 * 20 - CACHE_BREAKER.failure_threshold
                assert cache.stats().as_dict()["errors"] == CACHE_BREAKER.failure_threshold
                gauges = {m.name: m for m in cache_gauges({RESPONSE_CACHE: cache})}
                assert gauges["sluice_cache_errors"].samples[0].value == backend.errors
                lines = [r for r in caplog.records if r.name == "sluice.cache"]
                assert len(lines) == 1  # rate-limited: one line for the whole burst
                assert "running uncached" in lines[0].getMessage()

                server.start()
                clock.advance(CACHE_BREAKER.open_s)
                await asyncio.sleep(0.02)  # past the client's own cooldown
                await cached.predict(request)  # the probe (a miss: the data died with it)
                # Read through snapshot(): mypy would keep the property narrowed to OPEN.
                assert backend.breaker.snapshot().state is BreakerState.CLOSED
                await cached.predict(request)
                assert (model.calls, cache.stats().hits) == (22, 2)
            finally:
                await redis_kv.aclose()

    async def test_two_clients_share_one_cache(self) -> None:
        """Two Redis clients (as two processes) on one server: an answer cached by one is a
        hit for the other, and with no model call."""
        with RedisServer() as server:
            first_kv, second_kv = RedisKV(server.url), RedisKV(server.url)
            model = KeywordModel()
            first = ResponseCache(KVBackend(first_kv), ttl_s=60).wrap(model)
            second = ResponseCache(KVBackend(second_kv), ttl_s=60).wrap(model)
            try:
                await first.predict(ModelRequest(text="where is my card"))
                shared = await second.predict(ModelRequest(text="where  is my card "))
                assert model.calls == 1
                assert (shared.label, shared.cost) == ("card_arrival", 0.0)
            finally:
                await first_kv.aclose()
                await second_kv.aclose()

    async def test_store_never_reachable_is_uncached_from_the_start(self) -> None:
        """A cache configured on a Redis that is not there serves every request uncached."""
        server = RedisServer()  # a free port nothing listens on
        redis_kv = RedisKV(server.url)
        backend = KVBackend(redis_kv)
        model = KeywordModel()
        cached = ResponseCache(backend, ttl_s=60).wrap(model)
        try:
            for _ in range(5):
                await cached.predict(ModelRequest(text="lost card"))
            assert model.calls == 5
            assert backend.stats().errors >= 1
        finally:
            await redis_kv.aclose()
