"""Caches for model answers and retrieval results, over a small backend port.

``CacheBackend`` is the port (async bytes get/set with TTL); ``MemoryBackend`` is the
embedded LRU, ``KVBackend`` the app's KV (shared through Redis, uncached while it is away).
``ResponseCache`` / ``CachedModel`` cache model answers; ``RetrievalCache`` caches
neighbours; ``CompletionCache`` holds the AI gateway's answers. All report ``stats()``, and
all take their ``CacheSettings`` from one parser (:mod:`sluice.cache.config`).
"""

from sluice.cache.backend import BackendStats, CacheBackend, MemoryBackend
from sluice.cache.completions import CompletionCache
from sluice.cache.config import (
    RESPONSE_CACHE,
    RETRIEVAL_CACHE,
    CacheSettings,
    build_caches,
    parse_caches,
)
from sluice.cache.errors import CacheConfigError
from sluice.cache.keys import normalize_prompt, response_key
from sluice.cache.kv_backend import KVBackend
from sluice.cache.response import CachedModel, ResponseCache
from sluice.cache.retrieval import RetrievalCache
from sluice.cache.stats import CacheStats

__all__ = [
    "RESPONSE_CACHE",
    "RETRIEVAL_CACHE",
    "BackendStats",
    "CacheBackend",
    "CacheConfigError",
    "CacheSettings",
    "CacheStats",
    "CachedModel",
    "CompletionCache",
    "KVBackend",
    "MemoryBackend",
    "ResponseCache",
    "RetrievalCache",
    "build_caches",
    "normalize_prompt",
    "parse_caches",
    "response_key",
]
