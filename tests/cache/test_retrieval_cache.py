"""The retrieval cache: keys follow the index's state; TTL; configuration."""

from __future__ import annotations

import pytest

from sluice.cache import (
    RESPONSE_CACHE,
    RETRIEVAL_CACHE,
    CacheConfigError,
    MemoryBackend,
    ResponseCache,
    RetrievalCache,
    build_caches,
)
from sluice.retrieval import IndexItem, VectorIndex, minilm_embedder, wordllama_embedder
from sluice.testing import ManualClock


class TestKeys:
    def test_delta_changes_the_key(self) -> None:
        """Any delta to the index bumps its generation, so older entries stop matching."""
        index = VectorIndex(wordllama_embedder(), name="tickets")
        before = RetrievalCache.key(index, "lost card", 5)
        index.add([IndexItem("t-1", "my card is lost")])
        after = RetrievalCache.key(index, "lost card", 5)
        assert before != after
        assert after != RetrievalCache.key(index, "lost card", 3)

    def test_case_folds_for_uncased_embedders_only(self) -> None:
        """MiniLM ignores case, so its queries fold; wordllama's do not."""
        uncased = VectorIndex(minilm_embedder(), name="t")
        cased = VectorIndex(wordllama_embedder(), name="t")
        assert RetrievalCache.key(uncased, "Lost PIN", 5) == RetrievalCache.key(
            uncased, "lost  pin", 5
        )
        assert RetrievalCache.key(cased, "Lost PIN", 5) != RetrievalCache.key(cased, "lost pin", 5)
        assert RetrievalCache.key(cased, "lost pin ", 5) == RetrievalCache.key(cased, "lost pin", 5)


class TestCache:
    async def test_hits_misses_and_ttl(self, clock: ManualClock) -> None:
        """Stored neighbours come back until the TTL passes."""
        cache = RetrievalCache(MemoryBackend(10, clock=clock), ttl_s=5)
        assert await cache.get("k") is None
        await cache.put("k", [{"id": "t-1", "score": 0.9}])
        assert await cache.get("k") == [{"id": "t-1", "score": 0.9}]
        clock.advance(6)
        assert await cache.get("k") is None
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.expirations) == (1, 2, 1)
        assert stats.as_dict()["hit_rate"] == pytest.approx(1 / 3, abs=1e-6)

    def test_bad_ttl(self) -> None:
        """A non-positive TTL is a configuration error."""
        with pytest.raises(CacheConfigError):
            RetrievalCache(MemoryBackend(), ttl_s=0)


class TestConfig:
    def test_defaults(self) -> None:
        """No caches section gives both caches with their default bounds and TTLs."""
        caches = build_caches(None)
        responses, retrieval = caches[RESPONSE_CACHE], caches[RETRIEVAL_CACHE]
        assert isinstance(responses, ResponseCache)
        assert isinstance(retrieval, RetrievalCache)
        assert (responses.ttl_s, retrieval.ttl_s) == (86_400.0, 300.0)

    def test_values_are_applied(self) -> None:
        """Configured bounds reach the backend."""
        caches = build_caches({"retrieval": {"max_entries": 7, "max_mb": 1, "ttl_s": 9}})
        retrieval = caches[RETRIEVAL_CACHE]
        assert isinstance(retrieval, RetrievalCache)
        assert isinstance(retrieval.backend, MemoryBackend)
        assert (retrieval.backend.max_entries, retrieval.backend.max_bytes) == (7, 1024 * 1024)
        assert retrieval.ttl_s == 9

    def test_every_problem_is_reported(self) -> None:
        """Bad values are all listed with their paths."""
        with pytest.raises(CacheConfigError) as caught:
            build_caches(
                {"responses": {"max_entries": 0, "ttl": 5}, "embeddings": {}, "retrieval": 3}
            )
        assert caught.value.problems == [
            "caches.embeddings: unknown cache (known: responses, retrieval)",
            "caches.responses.ttl: unknown field",
            "caches.responses.max_entries: expected a positive number",
            "caches.retrieval: expected a mapping",
        ]
