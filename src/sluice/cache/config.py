"""The ``caches`` section of ``sluice.yaml``, and the caches it describes.

Example::

    caches:
      responses:              # model answers (CachedModel)
        max_entries: 10000
        max_mb: 64
        ttl_s: 86400
        backend: memory       # memory (per process, the default) | kv (the app's KV)
      retrieval:              # neighbours found by the retrieve step
        max_entries: 5000
        ttl_s: 300

Both sections are optional; a missing one gets the defaults shown. ``backend: kv`` keeps the
cache in the app's KV (``kv:`` / ``SLUICE_KV``): with Redis, every process shares it and it
survives restarts; entries are bounded by ``ttl_s`` (required to be finite there: a day at
most) and values by ``max_value_kb`` (default 256), while ``max_entries`` and ``max_mb`` only
bound the in-process backend (a shared store is bounded by its own memory policy). A KV cache
whose store fails runs uncached, see :mod:`sluice.cache.kv_backend`; ``prefix`` (default
``cache:``) namespaces its keys. ``SLUICE_CACHE_BACKEND=kv|memory`` overrides ``backend`` of
every cache (drills and deployments flip it without editing the app).

:func:`build_caches` returns the services to wire under :data:`RESPONSE_CACHE` and
:data:`RETRIEVAL_CACHE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.cache.backend import CacheBackend, MemoryBackend
from sluice.cache.errors import CacheConfigError
from sluice.cache.kv_backend import DEFAULT_MAX_TTL_S, DEFAULT_MAX_VALUE_BYTES, KVBackend
from sluice.cache.response import DEFAULT_RESPONSE_TTL_S, ResponseCache
from sluice.cache.retrieval import DEFAULT_RETRIEVAL_TTL_S, RetrievalCache
from sluice.kv.base import KV

#: Service names under which steps find the caches in ``ctx.services``.
RESPONSE_CACHE = "response_cache"
RETRIEVAL_CACHE = "retrieval_cache"

#: Where a cache keeps its entries.
BACKENDS = ("memory", "kv")
#: The environment variable that overrides ``backend`` of every cache.
BACKEND_ENV = "SLUICE_CACHE_BACKEND"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Bounds, TTL and backend of one cache."""

    max_entries: int
    max_mb: float
    ttl_s: float | None
    backend: str = "memory"
    prefix: str = "cache:"
    max_value_kb: float = DEFAULT_MAX_VALUE_BYTES / 1024


_DEFAULTS = {
    "responses": CacheSettings(10_000, 64.0, DEFAULT_RESPONSE_TTL_S),
    "retrieval": CacheSettings(5_000, 16.0, DEFAULT_RETRIEVAL_TTL_S),
}


_FIELDS = frozenset({"max_entries", "max_mb", "ttl_s", "backend", "prefix", "max_value_kb"})


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def parse_caches(raw: Any, *, backend: str | None = None) -> dict[str, CacheSettings]:
    """Validate the ``caches`` section; report every problem at once with its path.

    ``backend`` (from :data:`BACKEND_ENV`) replaces every cache's ``backend`` when given.
    """
    if backend is not None and backend not in BACKENDS:
        raise CacheConfigError(f"{BACKEND_ENV}: expected one of {', '.join(BACKENDS)}")
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
        extra = sorted(set(entry) - _FIELDS)
        problems += [f"caches.{name}.{key}: unknown field" for key in extra]
        for key in ("max_entries", "max_mb", "max_value_kb"):
            if key in entry and not _positive(entry[key]):
                problems.append(f"caches.{name}.{key}: expected a positive number")
        if "ttl_s" in entry and entry["ttl_s"] is not None and not _positive(entry["ttl_s"]):
            problems.append(f"caches.{name}.ttl_s: expected a positive number or null")
        chosen = backend or entry.get("backend", "memory")
        if chosen not in BACKENDS:
            problems.append(f"caches.{name}.backend: expected one of {', '.join(BACKENDS)}")
        ttl_s = entry.get("ttl_s", default.ttl_s)
        if chosen == "kv" and (ttl_s is None or (_positive(ttl_s) and ttl_s > DEFAULT_MAX_TTL_S)):
            problems.append(
                f"caches.{name}.ttl_s: backend kv needs a TTL of at most {DEFAULT_MAX_TTL_S:g} s"
                " (a shared store keeps entries until they expire)"
            )
        prefix = entry.get("prefix", "cache:")
        if not isinstance(prefix, str) or not prefix:
            problems.append(f"caches.{name}.prefix: expected a non-empty string")
        out[name] = CacheSettings(
            max_entries=int(entry.get("max_entries", default.max_entries)),
            max_mb=float(entry.get("max_mb", default.max_mb)),
            ttl_s=ttl_s,
            backend=str(chosen),
            prefix=str(prefix),
            max_value_kb=float(entry.get("max_value_kb", default.max_value_kb)),
        )
    if problems:
        raise CacheConfigError("invalid caches configuration", problems)
    return out


def _backend(name: str, settings: CacheSettings, kv: KV | None) -> CacheBackend:
    if settings.backend == "memory":
        return MemoryBackend(settings.max_entries, max_bytes=int(settings.max_mb * 1024 * 1024))
    if kv is None:
        raise CacheConfigError(f"caches.{name}.backend: kv, but no KV was given to the caches")
    return KVBackend(
        kv,
        name=name,
        prefix=settings.prefix,
        max_value_bytes=max(1, int(settings.max_value_kb * 1024)),
    )


def build_caches(
    raw: Any, kv: KV | None = None, *, env: Mapping[str, str] | None = None
) -> dict[str, ResponseCache | RetrievalCache]:
    """The caches of the ``caches`` section, keyed by their service names.

    ``kv`` is the app's KV (needed by ``backend: kv``); ``env`` may hold
    :data:`BACKEND_ENV`.
    """
    override = (env or {}).get(BACKEND_ENV) or None
    settings = parse_caches(raw, backend=override)
    responses, retrieval = settings["responses"], settings["retrieval"]
    return {
        RESPONSE_CACHE: ResponseCache(_backend("responses", responses, kv), ttl_s=responses.ttl_s),
        RETRIEVAL_CACHE: RetrievalCache(
            _backend("retrieval", retrieval, kv), ttl_s=retrieval.ttl_s
        ),
    }
