"""The KV protocol: small shared state with expiry, for limits, caches and budgets.

::

    SluiceError
    └── KVError                     the KV store refused or failed an operation
        └── KVUnavailableError      the backend cannot be reached; ``retry_after`` says when
                                    the next attempt will really try again

One process uses :class:`~sluice.kv.memory.MemoryKV`; several processes share state through
:class:`~sluice.kv.redis.RedisKV`. :class:`~sluice.kv.fallback.FallbackKV` prefers the shared
one and falls back to a local one while it is down, so callers can always continue (with
per-process limits meanwhile). Values are bytes; counters are integers (count money in
micro-units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sluice.errors import SluiceError


class KVError(SluiceError):
    """The KV store refused or failed an operation."""


class KVUnavailableError(KVError):
    """The KV backend cannot be reached; callers should continue without it.

    ``retry_after`` (seconds) is how long calls will keep failing at once before the backend
    is tried again.
    """

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """The answer of a token bucket: ``allowed``, tokens left, and when to try again if not."""

    allowed: bool
    remaining: float
    retry_after: float


def check_bucket(rate: float, burst: float, cost: float) -> None:
    """Refuse bucket parameters that could never grant (shared by every implementation)."""
    if rate <= 0 or burst <= 0 or cost <= 0:
        raise KVError(f"token bucket: rate, burst and cost must be > 0 ({rate}, {burst}, {cost})")
    if cost > burst:
        raise KVError(f"token bucket: cost {cost} exceeds the burst {burst}; it never fits")


class KV(Protocol):
    """What Sluice needs from a key-value store. Every implementation passes one contract suite.

    TTLs are seconds (``None``: no expiry). Every operation is atomic on its key.
    """

    async def open(self) -> None:
        """Connect (a no-op for local stores)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any value and expiry."""
        ...

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent; True if this call stored it."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        ...

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Add ``amount`` to the counter at ``key`` (created at 0); return the new value.

        ``ttl_s`` applies when the counter is created, so it counts a fixed window.
        """
        ...

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> TokenGrant:
        """Take ``cost`` tokens from the bucket at ``key`` (``rate`` per second, ``burst`` max).

        The bucket starts full. Nothing is taken when there are too few tokens.
        """
        ...
