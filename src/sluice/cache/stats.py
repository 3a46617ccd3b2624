"""Counters every cache reports through ``stats()``, and the Protocol of things that do."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from sluice.cache.backend import BackendStats


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Hits and misses seen by one cache, with its backend's size, evictions and failures.

    ``errors`` counts backend calls that failed; each failed lookup is also a miss.
    """

    hits: int
    misses: int
    evictions: int
    expirations: int
    entries: int
    bytes: int
    errors: int = 0

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def as_dict(self) -> dict[str, float]:
        """The counters and the hit rate, for metrics and JSON."""
        return {**asdict(self), "hit_rate": round(self.hit_rate, 6)}


class Counters:
    """Mutable hit and miss counts owned by one cache."""

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def snapshot(self, backend: BackendStats) -> CacheStats:
        """Combine the counts with what the backend reports."""
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            evictions=backend.evictions,
            expirations=backend.expirations,
            entries=backend.entries,
            bytes=backend.bytes,
            errors=backend.errors,
        )


@runtime_checkable
class ReportsStats(Protocol):
    """Anything that counts its hits and misses like a cache: the response and retrieval
    caches, the AI gateway's cache, and custom services that choose to.

    ``/metrics`` (``sluice_cache_*``) and ``/v1/status`` (``caches``) list every service of
    the app that is one (:meth:`sluice.services.Services.cache_stats`).
    """

    def stats(self) -> CacheStats:
        """The counters now."""
        ...
