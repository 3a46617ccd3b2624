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

Both sections are optional; a missing one gets the defaults shown. The AI gateway's
``gateway: {cache: ...}`` takes the same settings (:func:`parse_cache`), plus ``enabled``
and ``backend: auto`` (its default: kv when the app's KV is shared, else memory).
``backend: kv`` keeps the cache in the app's KV (``kv:`` / ``SLUICE_KV``): with Redis, every
process shares it and it survives restarts; entries are bounded by ``ttl_s`` (required to be
finite there: a day at most) and values by ``max_value_kb`` (default 256), while
``max_entries`` and ``max_mb`` only bound the in-process backend (a shared store is bounded
by its own memory policy). A KV cache whose store fails runs uncached, see
:mod:`sluice.cache.kv_backend`; ``prefix`` (default ``cache:``) namespaces its keys.
``SLUICE_CACHE_BACKEND=kv|memory`` overrides ``backend`` of every cache (drills and
deployments flip it without editing the app).

:func:`build_caches` returns the services to wire under :data:`RESPONSE_CACHE` and
:data:`RETRIEVAL_CACHE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.cache.backend import CacheBackend, MemoryBackend
from sluice.cache.errors import CacheConfigError
from sluice.cache.kv_backend import (
    DEFAULT_MAX_TTL_S,
    DEFAULT_MAX_VALUE_BYTES,
    KVBackend,
    is_shared,
)
from sluice.cache.response import DEFAULT_RESPONSE_TTL_S, ResponseCache
from sluice.cache.retrieval import DEFAULT_RETRIEVAL_TTL_S, RetrievalCache
from sluice.kv.base import KV

#: Service names under which steps find the caches in ``ctx.services``.
RESPONSE_CACHE = "response_cache"
RETRIEVAL_CACHE = "retrieval_cache"

#: Where a cache keeps its entries.
BACKENDS = ("memory", "kv")
#: ... and for the AI gateway's cache, ``auto`` besides (see :func:`build_backend`).
AUTO_BACKENDS = (*BACKENDS, "auto")
#: The environment variable that overrides ``backend`` of every cache.
BACKEND_ENV = "SLUICE_CACHE_BACKEND"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Bounds, TTL and backend of one cache: the ``caches:`` entries and the AI gateway's.

    ``backend`` is ``memory``, ``kv`` or ``auto`` (the KV when the app's KV is shared, as
    Redis is, else memory). ``enabled`` is only ever false for the AI gateway's cache, which
    is off unless asked for.
    """

    max_entries: int
    max_mb: float
    ttl_s: float | None
    backend: str = "memory"
    prefix: str = "cache:"
    max_value_kb: float = DEFAULT_MAX_VALUE_BYTES / 1024
    enabled: bool = True


_DEFAULTS = {
    "responses": CacheSettings(10_000, 64.0, DEFAULT_RESPONSE_TTL_S),
    "retrieval": CacheSettings(5_000, 16.0, DEFAULT_RETRIEVAL_TTL_S),
}


#: The settings of one cache, as written in YAML.
FIELDS = frozenset({"max_entries", "max_mb", "ttl_s", "backend", "prefix", "max_value_kb"})


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def parse_cache(
    entry: Mapping[str, Any],
    where: str,
    default: CacheSettings,
    problems: list[str],
    *,
    backend: str | None = None,
    backends: tuple[str, ...] = BACKENDS,
) -> CacheSettings:
    """One cache's settings from ``entry`` (keys of :data:`FIELDS`) over ``default``.

    Problems are appended to ``problems`` with ``where`` as their path; unknown keys are the
    caller's to report (the sections name them differently). ``backend`` (from
    :data:`BACKEND_ENV`) replaces the entry's ``backend`` when given; ``backends`` are the
    ones this cache may name.
    """
    for key in ("max_entries", "max_mb", "max_value_kb"):
        if key in entry and not _positive(entry[key]):
            problems.append(f"{where}.{key}: expected a positive number")
    if "ttl_s" in entry and entry["ttl_s"] is not None and not _positive(entry["ttl_s"]):
        problems.append(f"{where}.ttl_s: expected a positive number or null")
    chosen = backend or entry.get("backend", default.backend)
    if chosen not in backends:
        problems.append(f"{where}.backend: expected one of {', '.join(backends)}")
    ttl_s = entry.get("ttl_s", default.ttl_s)
    # ``auto`` is not held to it: it chooses the KV only where it is shared, and a KV
    # backend caps every TTL at a day anyway (a config written for memory keeps working).
    if chosen == "kv" and (ttl_s is None or (_positive(ttl_s) and ttl_s > DEFAULT_MAX_TTL_S)):
        problems.append(
            f"{where}.ttl_s: backend kv needs a TTL of at most {DEFAULT_MAX_TTL_S:g} s"
            " (a shared store keeps entries until they expire)"
        )
    prefix = entry.get("prefix", default.prefix)
    if not isinstance(prefix, str) or not prefix:
        problems.append(f"{where}.prefix: expected a non-empty string")
    return CacheSettings(
        max_entries=int(entry.get("max_entries", default.max_entries)),
        max_mb=float(entry.get("max_mb", default.max_mb)),
        ttl_s=ttl_s,
        backend=str(chosen),
        prefix=str(prefix),
        max_value_kb=float(entry.get("max_value_kb", default.max_value_kb)),
        enabled=default.enabled,
    )


def parse_caches(raw: Any, *, backend: str | None = None) -> dict[str, CacheSettings]:
    """Validate the ``caches`` section; report every problem at once with its path.

    ``backend`` (from :data:`BACKEND_ENV`) replaces every cache's ``backend`` when given.
    """
    check_backend_override(backend)
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
        extra = sorted(set(entry) - FIELDS)
        problems += [f"caches.{name}.{key}: unknown field" for key in extra]
        out[name] = parse_cache(entry, f"caches.{name}", default, problems, backend=backend)
    if problems:
        raise CacheConfigError("invalid caches configuration", problems)
    return out


def check_backend_override(backend: str | None) -> None:
    """Refuse a :data:`BACKEND_ENV` value that names no backend."""
    if backend is not None and backend not in BACKENDS:
        raise CacheConfigError(f"{BACKEND_ENV}: expected one of {', '.join(BACKENDS)}")


def build_backend(
    name: str, settings: CacheSettings, kv: KV | None, *, where: str | None = None
) -> CacheBackend:
    """The backend ``settings`` ask for: in process, or on ``kv`` (the app's KV).

    ``name`` names the KV backend's breaker (``cache:NAME``); ``where`` is the settings'
    path for errors (default ``caches.NAME``).

    ``auto`` is the KV when it is shared between processes (Redis), else in process: an
    in-memory KV would hold the entries in the same process anyway, in the LRU that also
    holds the rate-limit buckets, bounded by keys and not by bytes.
    """
    chosen = settings.backend
    if chosen == "auto":
        chosen = "kv" if kv is not None and is_shared(kv) else "memory"
    if chosen == "memory":
        return MemoryBackend(settings.max_entries, max_bytes=int(settings.max_mb * 1024 * 1024))
    if kv is None:
        raise CacheConfigError(
            f"{where or 'caches.' + name}.backend: kv, but no KV was given to the caches"
        )
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
        RESPONSE_CACHE: ResponseCache(
            build_backend("responses", responses, kv), ttl_s=responses.ttl_s
        ),
        RETRIEVAL_CACHE: RetrievalCache(
            build_backend("retrieval", retrieval, kv), ttl_s=retrieval.ttl_s
        ),
    }
