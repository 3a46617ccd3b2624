"""Shared counters, limits and caches: the KV protocol and its implementations."""

from typing import TYPE_CHECKING

from sluice.kv.base import KV, KVError, KVUnavailableError, TokenGrant
from sluice.kv.fallback import FallbackKV
from sluice.kv.limiter import KVRateLimiter
from sluice.kv.memory import MemoryKV
from sluice.kv.settings import build_kv, kv_url

if TYPE_CHECKING:
    from sluice.kv.redis import RedisKV

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


def __getattr__(name: str) -> object:
    # RedisKV needs the ``redis`` extra: imported when asked for, so ``import sluice.kv``
    # works on a core install.
    if name == "RedisKV":
        from sluice.kv.redis import RedisKV

        return RedisKV
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
