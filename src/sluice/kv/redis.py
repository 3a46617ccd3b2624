"""The shared KV: Redis through redis-py's asyncio client.

Fails fast when Redis is away: connects and reads have short timeouts, the client does not
retry, and after a failure every call raises :class:`~sluice.kv.base.KVUnavailableError` at
once for ``cooldown_s`` before Redis is tried again, so a dead Redis costs callers
microseconds, not a timeout each. It recovers by itself when Redis returns. The token bucket
and counters are Lua scripts: one round trip, atomic across every process, on Redis's clock.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sluice.kv.base import KVError, KVUnavailableError, TokenGrant, check_bucket

T = TypeVar("T")

# KEYS[1] bucket; ARGV rate/s, burst, cost. State is a hash {t: tokens, ts: last refill}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens), tostring(wait)}
"""

# KEYS[1] counter; ARGV amount, ttl in ms (0: none). The TTL is set when the key is created.
_INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return value
"""

_DOWN = (rexc.ConnectionError, rexc.TimeoutError, OSError, TimeoutError)


def _ms(ttl_s: float | None) -> int | None:
    return None if ttl_s is None else max(1, round(ttl_s * 1000))


class RedisKV:
    """:class:`~sluice.kv.base.KV` on Redis; every key is prefixed with ``prefix``."""

    def __init__(
        self,
        url: str,
        prefix: str = "sluice:",
        connect_timeout_s: float = 0.25,
        timeout_s: float = 0.5,
        cooldown_s: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        parts = urlsplit(url)
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"
        self.prefix = prefix
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self._cooldown_s = cooldown_s
        self._down_until = 0.0
        self._pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,  # waiting for a free connection is bounded too
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = aioredis.Redis(connection_pool=self._pool)
        self._take = self._redis.register_script(_TAKE)
        self._incr = self._redis.register_script(_INCR)

    async def open(self) -> None:
        """Check that Redis answers; raises KVUnavailableError if it does not."""
        await self._call(self._redis.ping)

    async def aclose(self) -> None:
        """Close every connection."""
        await self._redis.aclose()
        await self._pool.disconnect()

    async def __aenter__(self) -> RedisKV:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        left = self._down_until - time.monotonic()
        if left > 0:
            raise KVUnavailableError(f"Redis at {self.where} is unavailable", retry_after=left)
        try:
            return await fn(*args, **kwargs)
        except _DOWN as exc:
            self._down_until = time.monotonic() + self._cooldown_s
            raise KVUnavailableError(
                f"Redis at {self.where} is unavailable: {type(exc).__name__}: {exc}",
                retry_after=self._cooldown_s,
            ) from exc
        except rexc.RedisError as exc:
            raise KVError(f"Redis: {type(exc).__name__}: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``."""
        value: Any = await self._call(self._redis.get, self.prefix + key)
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``."""
        await self._call(self._redis.set, self.prefix + key, value, px=_ms(ttl_s))

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Store ``value`` unless ``key`` is present (``SET NX``)."""
        stored = await self._call(self._redis.set, self.prefix + key, value, px=_ms(ttl_s), nx=True)
        return bool(stored)

    async def delete(self, key: str) -> bool:
        """Remove ``key``."""
        return bool(await self._call(self._redis.delete, self.prefix + key))

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Add ``amount`` to the counter; the TTL starts when the counter is created."""
        value = await self._call(
            self._incr, keys=[self.prefix + key], args=[amount, _ms(ttl_s) or 0]
        )
        return int(value)

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> TokenGrant:
        """Take ``cost`` tokens if the shared bucket holds them."""
        check_bucket(rate, burst, cost)
        allowed, remaining, wait = await self._call(
            self._take, keys=[self.prefix + key], args=[repr(rate), repr(burst), repr(cost)]
        )
        return TokenGrant(bool(allowed), float(remaining), float(wait))

    async def delete_prefix(self) -> int:
        """Delete every key under this store's prefix (tests and resets); return how many."""
        deleted = 0
        async for key in self._redis.scan_iter(match=self.prefix + "*", count=500):
            deleted += int(await self._call(self._redis.delete, key))
        return deleted
