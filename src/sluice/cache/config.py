"""The ``caches`` section of ``sluice.yaml``, and the in-memory caches it describes.

Example::

    caches:
      responses:              # model answers (CachedModel)
        max_entries: 10000
        max_mb: 64
        ttl_s: 86400
      retrieval:              # neighbours found by the retrieve step
        max_entries: 5000
        ttl_s: 300

Both sections are optional; a missing one gets the defaults shown. :func:`build_caches`
returns the services to wire under :data:`RESPONSE_CACHE` and :data:`RETRIEVAL_CACHE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.cache.backend import MemoryBackend
from sluice.cache.errors import CacheConfigError
from sluice.cache.response import DEFAULT_RESPONSE_TTL_S, ResponseCache
from sluice.cache.retrieval import DEFAULT_RETRIEVAL_TTL_S, RetrievalCache

#: Service names under which steps find the caches in ``ctx.services``.
RESPONSE_CACHE = "response_cache"
RETRIEVAL_CACHE = "retrieval_cache"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Bounds and TTL of one cache."""

    max_entries: int
    max_mb: float
    ttl_s: float | None


_DEFAULTS = {
    "responses": CacheSettings(10_000, 64.0, DEFAULT_RESPONSE_TTL_S),
    "retrieval": CacheSettings(5_000, 16.0, DEFAULT_RETRIEVAL_TTL_S),
}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def parse_caches(raw: Any) -> dict[str, CacheSettings]:
    """Validate the ``caches`` section; report every problem at once with its path."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise CacheConfigError("caches: expected a mapping")
    problems: list[str] = []
    unknown = sorted(set(raw) - set(_DEFAULTS))
    problems += [f"caches.{name}: unknown cache (known: responses, retrieval)" for name in unknown]
    out: dict[str, CacheSettings] = {}
    for name, default in _DEFAULTS.items():
        entry = raw.get(name) or {}
        if not isinstance(entry, Mapping):
            problems.append(f"caches.{name}: expected a mapping")
            continue
        extra = sorted(set(entry) - {"max_entries", "max_mb", "ttl_s"})
        problems += [f"caches.{name}.{key}: unknown field" for key in extra]
        for key in ("max_entries", "max_mb"):
            if key in entry and not _positive(entry[key]):
                problems.append(f"caches.{name}.{key}: expected a positive number")
        if "ttl_s" in entry and entry["ttl_s"] is not None and not _positive(entry["ttl_s"]):
            problems.append(f"caches.{name}.ttl_s: expected a positive number or null")
        out[name] = CacheSettings(
            max_entries=int(entry.get("max_entries", default.max_entries)),
            max_mb=float(entry.get("max_mb", default.max_mb)),
            ttl_s=entry.get("ttl_s", default.ttl_s),
        )
    if problems:
        raise CacheConfigError("invalid caches configuration", problems)
    return out


def _backend(settings: CacheSettings) -> MemoryBackend:
    return MemoryBackend(settings.max_entries, max_bytes=int(settings.max_mb * 1024 * 1024))


def build_caches(raw: Any) -> dict[str, ResponseCache | RetrievalCache]:
    """In-memory caches from the ``caches`` section, keyed by their service names."""
    settings = parse_caches(raw)
    responses, retrieval = settings["responses"], settings["retrieval"]
    return {
        RESPONSE_CACHE: ResponseCache(_backend(responses), ttl_s=responses.ttl_s),
        RETRIEVAL_CACHE: RetrievalCache(_backend(retrieval), ttl_s=retrieval.ttl_s),
    }
