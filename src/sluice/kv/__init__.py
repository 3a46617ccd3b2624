"""Shared counters, limits and caches: the KV protocol and its implementations."""

from sluice.kv.base import KV, KVError, KVUnavailableError, TokenGrant
from sluice.kv.fallback import FallbackKV
from sluice.kv.limiter import KVRateLimiter
from sluice.kv.memory import MemoryKV
from sluice.kv.redis import RedisKV
from sluice.kv.settings import build_kv, kv_url

__all__ = [
    "KV",
    "FallbackKV",
    "KVError",
    "KVRateLimiter",
    "KVUnavailableError",
    "MemoryKV",
    "RedisKV",
    "TokenGrant",
    "build_kv",
    "kv_url",
]
