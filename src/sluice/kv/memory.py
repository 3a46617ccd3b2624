"""The in-process KV: a bounded LRU map with expiry, for one process and for tests."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sluice.kv.base import KVError, TokenGrant, check_bucket


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


_Value = bytes | int | _Bucket


class MemoryKV:
    """:class:`~sluice.kv.base.KV` in this process's memory, holding at most ``max_keys``.

    When full, the least recently used key is dropped (for limits that means a fresh, full
    bucket: bounded memory is worth a rare extra burst). ``clock`` is injectable for tests.
    """

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.max_keys = max_keys
        self._clock = clock
        self._data: OrderedDict[str, tuple[_Value, float | None]] = OrderedDict()

    async def open(self) -> None:
        """Nothing to connect."""

    async def aclose(self) -> None:
        """Forget everything."""
        self._data.clear()

    async def __aenter__(self) -> MemoryKV:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __len__(self) -> int:
        return len(self._data)

    def _lookup(self, key: str) -> _Value | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def _store(self, key: str, value: _Value, ttl_s: float | None) -> None:
        expires = None if ttl_s is None else self._clock() + ttl_s
        self._data[key] = (value, expires)
        self._data.move_to_end(key)
        while len(self._data) > self.max_keys:
            self._data.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        """The value of ``key`` (a counter reads as its decimal digits)."""
        value = self._lookup(key)
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, int):
            return str(value).encode()
        raise KVError(f"key {key!r} holds a token bucket, not a value")

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``."""
        self._store(key, bytes(value), ttl_s)

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Store ``value`` unless ``key`` is present."""
        if self._lookup(key) is not None:
            return False
        self._store(key, bytes(value), ttl_s)
        return True

    async def delete(self, key: str) -> bool:
        """Remove ``key``."""
        present = self._lookup(key) is not None
        self._data.pop(key, None)
        return present

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Add ``amount`` to the counter; the TTL starts when the counter is created."""
        value = self._lookup(key)
        if value is None:
            self._store(key, amount, ttl_s)
            return amount
        if isinstance(value, bytes):
            try:
                value = int(value)
            except ValueError:
                raise KVError(f"key {key!r} does not hold an integer") from None
        if not isinstance(value, int):
            raise KVError(f"key {key!r} holds a token bucket, not a counter")
        expires = self._data[key][1]
        self._data[key] = (value + amount, expires)
        return value + amount

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> TokenGrant:
        """Take ``cost`` tokens if the bucket holds them."""
        check_bucket(rate, burst, cost)
        now = self._clock()
        value = self._lookup(key)
        if value is None:
            bucket = _Bucket(burst, now)
        elif isinstance(value, _Bucket):
            bucket = value
        else:
            raise KVError(f"key {key!r} holds a value, not a token bucket")
        if now > bucket.at:
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        allowed = bucket.tokens >= cost
        if allowed:
            bucket.tokens -= cost
        # An idle bucket refills completely in burst / rate: after that it can be forgotten.
        self._store(key, bucket, burst / rate + 1.0)
        wait = 0.0 if allowed else (cost - bucket.tokens) / rate
        return TokenGrant(allowed, bucket.tokens, wait)
