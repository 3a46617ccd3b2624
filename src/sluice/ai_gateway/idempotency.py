"""Idempotency keys of the AI gateway: the first answer is kept and replayed.

A request with an ``Idempotency-Key`` header claims the key for its tenant. The first one
leads: it calls the model and keeps its answer (a completion, as JSON) for ``ttl_s``. A repeat
with the same body replays that answer; one that arrives while the first is still running
waits for it (at most ``wait_s``); one with a different body is refused with
:class:`~sluice.errors.IdempotencyConflictError`. Only answers are kept: when the leader fails,
the next repeat runs again.

Keys live in a KV, one entry per (tenant, key) under the SHA-256 of both (the key itself is
the client's and is not stored): ``R`` + the body's digest while the leader runs (with a
lease, so a leader whose process died frees its key), then ``D`` + digest + the answer. On the
app's KV when it is shared (Redis), so a repeat sent to another gateway process is replayed
too; otherwise on an in-process KV of its own, bounded by ``max_entries`` (the oldest go
first), so answers never crowd the app's rate-limit buckets out of their LRU. While Redis is
away, a FallbackKV keeps the keys in its in-process side (unlike the cache, which runs
uncached): repeats are still caught within a process, and an outage is short.

Waiting: repeats in the process of the leader are woken by it at once; repeats elsewhere read
the key every ``poll_s``. The repeats of one process share one wait
(:class:`~sluice.kv.single_flight.SingleFlight`), so a burst of them costs one read per
``poll_s``, not one each.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from sluice.ai_gateway.config import IdempotencySettings
from sluice.errors import IdempotencyConflictError
from sluice.kv.base import KV
from sluice.kv.memory import MemoryKV
from sluice.kv.single_flight import SingleFlight

log = logging.getLogger("sluice.gateway")

_RUNNING = b"R"
_DONE = b"D"
_DIGEST = 32  # bytes of a SHA-256


class Lead:
    """The claim of the request that runs: :meth:`finish` with the answer, or :meth:`abandon`."""

    __slots__ = ("_digest", "_done", "_key", "_keys")

    def __init__(self, keys: IdempotencyKeys, key: str, digest: bytes) -> None:
        self._keys = keys
        self._key = key
        self._digest = digest
        self._done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()

    async def finish(self, answer: bytes) -> None:
        """Keep ``answer`` for replays and hand it to the waiting repeats."""
        if self._done.done():
            return
        self._settle(answer)
        await self._keys._write(self._key, _DONE + self._digest + answer)

    def abandon(self) -> None:
        """No answer: forget the key, so the next repeat runs again.

        Not async: it is called where the request is being cancelled or closed, so the KV
        is told in the background (repeats in this process are told at once).
        """
        if self._done.done():
            return
        self._settle(None)
        self._keys._forget(self._key)

    def _settle(self, answer: bytes | None) -> None:
        self._done.set_result(answer)
        if self._keys._leads.get(self._key) is self._done:
            del self._keys._leads[self._key]


class IdempotencyKeys:
    """Keys per (tenant, key) on a KV; :meth:`aclose` lets its background writes finish.

    ``kv`` is where the keys live (see the module docs); without one, an in-process KV of
    ``max_entries`` keys. ``lease_s`` bounds how long a running leader holds its key (default
    ``wait_s``): past it, a repeat leads again.
    """

    def __init__(
        self,
        settings: IdempotencySettings,
        kv: KV | None = None,
        *,
        lease_s: float | None = None,
        poll_s: float = 0.05,
        prefix: str = "gateway-idempotency:",
    ) -> None:
        self.settings = settings
        self.kv: KV = kv if kv is not None else MemoryKV(max_keys=settings.max_entries)
        self.lease_s = max(lease_s or 0.0, settings.wait_s)
        self.poll_s = poll_s
        self.prefix = prefix
        # Leaders running in this process, by KV key: their repeats here need not poll.
        self._leads: dict[str, asyncio.Future[bytes | None]] = {}
        self._waits: SingleFlight[str, bytes | None] = SingleFlight()
        self._tasks: set[asyncio.Task[None]] = set()
        # Keys being released in the background: a repeat here waits for the release
        # rather than finding the abandoned claim still in the KV.
        self._releasing: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        """Leaders running in this process now."""
        return len(self._leads)

    async def aclose(self) -> None:
        """Wait for the writes still in the background."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def claim(self, tenant: str, key: str, body: bytes) -> bytes | Lead:
        """The kept answer to replay, or a :class:`Lead` when this request must run."""
        kv_key = self.prefix + hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()
        digest = hashlib.sha256(body).digest()
        for _ in range(3):  # a leader that failed hands over to one of its repeats
            releasing = self._releasing.get(kv_key)
            if releasing is not None:
                await asyncio.shield(releasing)
            if await self.kv.set_if_absent(kv_key, _RUNNING + digest, self.lease_s):
                lead = Lead(self, kv_key, digest)
                self._leads[kv_key] = lead._done
                return lead
            value = await self.kv.get(kv_key)
            if value is None:
                continue  # the leader gave up (or its lease ran out) just now: lead instead
            if value[1 : 1 + _DIGEST] != digest:
                raise IdempotencyConflictError(
                    f"idempotency key {key!r} was used with a different request body"
                )
            if value[:1] == _DONE:
                return value[1 + _DIGEST :]
            try:
                async with asyncio.timeout(self.settings.wait_s):
                    answer = await self._waits.do(kv_key, lambda: self._settled(kv_key))
            except TimeoutError:
                raise IdempotencyConflictError(
                    f"a request with idempotency key {key!r} is still running"
                ) from None
            if answer is not None:
                return answer
        raise IdempotencyConflictError(f"requests with idempotency key {key!r} keep failing")

    async def _settled(self, kv_key: str) -> bytes | None:
        """The answer once the running leader of ``kv_key`` is done; None if it gave up."""
        while True:
            local = self._leads.get(kv_key)
            if local is not None:
                return await asyncio.shield(local)
            value = await self.kv.get(kv_key)
            if value is None:
                return None
            if value[:1] == _DONE:
                return value[1 + _DIGEST :]
            await asyncio.sleep(self.poll_s)

    async def _write(self, kv_key: str, value: bytes) -> None:
        try:
            await self.kv.set(kv_key, value, self.settings.ttl_s)
        except Exception as exc:  # noqa: BLE001 - the answer went out; only replays are lost
            log.warning("gateway: an idempotent answer could not be kept: %s", exc)

    def _forget(self, kv_key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._delete(kv_key))
        self._tasks.add(task)
        self._releasing[kv_key] = task

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if self._releasing.get(kv_key) is task:
                del self._releasing[kv_key]

        task.add_done_callback(done)

    async def _delete(self, kv_key: str) -> None:
        try:
            await self.kv.delete(kv_key)
        except Exception as exc:  # noqa: BLE001 - the lease frees the key in the end
            log.warning("gateway: an idempotency key could not be released: %s", exc)
