"""Shared state when possible, local state when not.

:class:`FallbackKV` sends every call to its primary (Redis) and, while the primary is
unavailable, to a local :class:`~sluice.kv.memory.MemoryKV` instead. It logs which one is in
use when it opens and on every switch, because the switch changes meaning: a rate limit that
held across all processes now holds per process, and caches start cold.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sluice.kv.base import KV, KVUnavailableError, TokenGrant
from sluice.kv.memory import MemoryKV

T = TypeVar("T")
log = logging.getLogger("sluice.kv")


class FallbackKV:
    """:class:`~sluice.kv.base.KV` that prefers ``primary`` and falls back to ``local``."""

    def __init__(self, primary: KV, local: KV | None = None, name: str = "redis") -> None:
        self.primary = primary
        self.local: KV = local or MemoryKV()
        self.name = name
        self.using_primary = True
        self.switches = 0

    async def open(self) -> None:
        """Try the primary once and say which store is in use."""
        try:
            await self.primary.open()
        except KVUnavailableError as exc:
            self.using_primary = False
            log.warning("kv: %s unavailable (%s); using in-process state for now", self.name, exc)
        else:
            log.info("kv: using %s", self.name)
        await self.local.open()

    async def aclose(self) -> None:
        """Close both stores."""
        await self.primary.aclose()
        await self.local.aclose()

    async def __aenter__(self) -> FallbackKV:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _route(self, call: Callable[[KV], Awaitable[T]]) -> T:
        try:
            result = await call(self.primary)
        except KVUnavailableError as exc:
            if self.using_primary:
                self.using_primary = False
                self.switches += 1
                log.warning(
                    "kv: %s unavailable (%s); using in-process state: shared limits now hold"
                    " per process and caches are cold until it returns",
                    self.name,
                    exc,
                )
            return await call(self.local)
        if not self.using_primary:
            self.using_primary = True
            self.switches += 1
            log.info("kv: %s is back; shared state in use again", self.name)
        return result

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``."""
        return await self._route(lambda kv: kv.get(key))

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``."""
        await self._route(lambda kv: kv.set(key, value, ttl_s))

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Store ``value`` unless ``key`` is present."""
        return await self._route(lambda kv: kv.set_if_absent(key, value, ttl_s))

    async def delete(self, key: str) -> bool:
        """Remove ``key``."""
        return await self._route(lambda kv: kv.delete(key))

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Add ``amount`` to the counter."""
        return await self._route(lambda kv: kv.incr(key, amount, ttl_s))

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> TokenGrant:
        """Take tokens from the bucket."""
        return await self._route(lambda kv: kv.take(key, rate, burst, cost))
