"""The retrieval cache: neighbours of a query, keyed by the index's state and the query.

The key holds the index name, its embedder, its ``generation`` (bumped by every delta, so an
upsert or delete makes older entries unreachable at once, without a flush), ``k`` and the
normalized query - case-folded only when the embedder is declared case-insensitive (see
:mod:`sluice.cache.keys`). The TTL is short by default: retrieval is cheap to redo, and the
cache is there for bursts of identical tickets, not as a second copy of the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from sluice.cache.backend import CacheBackend
from sluice.cache.errors import CacheConfigError
from sluice.cache.keys import normalize_prompt, stable_hash
from sluice.cache.stats import CacheStats, Counters
from sluice.telemetry.call_spans import cache_span, record_hit

#: Default time to live of cached neighbours.
DEFAULT_RETRIEVAL_TTL_S = 300.0


class RetrievalCache:
    """Search results in a :class:`CacheBackend`, with a TTL and hit/miss counts."""

    def __init__(
        self, backend: CacheBackend, *, ttl_s: float | None = DEFAULT_RETRIEVAL_TTL_S
    ) -> None:
        if ttl_s is not None and ttl_s <= 0:
            raise CacheConfigError(f"retrieval cache ttl_s must be positive, got {ttl_s}")
        self.backend = backend
        self.ttl_s = ttl_s
        self._counters = Counters()

    @staticmethod
    def key(index: Any, query: str, k: int) -> str:
        """The key of ``k`` neighbours of ``query`` in the current state of ``index``.

        ``index`` is anything with ``name``, ``generation`` and ``embedder`` (a
        :class:`~sluice.retrieval.index.VectorIndex`); an embedder with
        ``case_sensitive = False`` gets case-folded queries.
        """
        embedder = index.embedder
        casefold = not getattr(embedder, "case_sensitive", True)
        return stable_hash(
            "retr",
            {
                "index": index.name,
                "generation": index.generation,
                "embedder": [embedder.name, embedder.version],
                "k": k,
                "query": normalize_prompt(query, casefold=casefold),
            },
        )

    async def get(self, key: str) -> list[dict[str, Any]] | None:
        """The neighbours stored under ``key`` (a hit), or ``None`` (a miss)."""
        with cache_span("retrieval") as span:
            raw = await self.backend.get(key)
            record_hit(span, raw is not None)
        try:
            neighbours: Any = None if raw is None else orjson.loads(raw)
        except ValueError:
            neighbours = None  # unreadable (another version's, or damaged): a miss
        if not isinstance(neighbours, list):
            self._counters.misses += 1
            return None
        self._counters.hits += 1
        return neighbours

    async def put(self, key: str, neighbours: Sequence[dict[str, Any]]) -> None:
        """Store ``neighbours`` (JSON objects) under ``key`` for the cache's TTL."""
        await self.backend.set(key, orjson.dumps(list(neighbours)), self.ttl_s)

    def stats(self) -> CacheStats:
        """Hits, misses, evictions, expirations and size."""
        return self._counters.snapshot(self.backend.stats())
