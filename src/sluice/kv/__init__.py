"""Shared counters, limits and caches: the KV protocol and its implementations."""

from sluice.kv.base import KV, KVError, KVUnavailableError, TokenGrant
from sluice.kv.fallback import FallbackKV
from sluice.kv.memory import MemoryKV

__all__ = ["KV", "FallbackKV", "KVError", "KVUnavailableError", "MemoryKV", "TokenGrant"]
