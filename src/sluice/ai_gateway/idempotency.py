"""Idempotency keys of the AI gateway: the first answer is kept and replayed.

A request with an ``Idempotency-Key`` header claims the key for its tenant. The first one
leads: it calls the model and keeps its answer (a completion, as JSON) for ``ttl_s``. A repeat
with the same body replays that answer; one that arrives while the first is still running
waits for it (single flight, at most ``wait_s``); one with a different body is refused with
:class:`~sluice.errors.IdempotencyConflictError`. Only answers are kept: when the leader fails,
the next repeat runs again. Keys live in this process, at most ``max_entries`` of them (the
oldest go first).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sluice.ai_gateway.config import IdempotencySettings
from sluice.errors import IdempotencyConflictError


@dataclass(slots=True)
class _Entry:
    digest: bytes
    expires: float
    answer: bytes | None
    done: asyncio.Future[bytes | None]


class Lead:
    """The claim of the request that runs: :meth:`finish` with the answer, or :meth:`abandon`."""

    __slots__ = ("_entry", "_keys", "_scope")

    def __init__(self, keys: IdempotencyKeys, scope: tuple[str, str], entry: _Entry) -> None:
        self._keys = keys
        self._scope = scope
        self._entry = entry

    def finish(self, answer: bytes) -> None:
        """Keep ``answer`` for replays and hand it to the waiting repeats."""
        entry = self._entry
        if entry.done.done():
            return
        entry.answer = answer
        entry.done.set_result(answer)

    def abandon(self) -> None:
        """No answer: forget the key, so the next repeat runs again."""
        entry = self._entry
        if entry.done.done():
            return
        entry.done.set_result(None)
        if self._keys._entries.get(self._scope) is entry:
            del self._keys._entries[self._scope]


class IdempotencyKeys:
    """Keys per (tenant, key) in a bounded, expiring map; one event loop owns it."""

    def __init__(
        self, settings: IdempotencySettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def __len__(self) -> int:
        """Keys held now (expired ones included until swept)."""
        return len(self._entries)

    async def claim(self, tenant: str, key: str, body: bytes) -> bytes | Lead:
        """The kept answer to replay, or a :class:`Lead` when this request must run."""
        scope = (tenant, key)
        digest = hashlib.sha256(body).digest()
        for _ in range(3):  # a leader that failed hands over to one of its repeats
            now = self._clock()
            entry = self._entries.get(scope)
            if entry is not None and entry.expires <= now:
                del self._entries[scope]
                entry = None
            if entry is None:
                return self._lead(scope, digest, now)
            if entry.digest != digest:
                raise IdempotencyConflictError(
                    f"idempotency key {key!r} was used with a different request body"
                )
            if entry.answer is not None:
                return entry.answer
            try:
                answer = await asyncio.wait_for(asyncio.shield(entry.done), self.settings.wait_s)
            except TimeoutError:
                raise IdempotencyConflictError(
                    f"a request with idempotency key {key!r} is still running"
                ) from None
            if answer is not None:
                return answer
        raise IdempotencyConflictError(f"requests with idempotency key {key!r} keep failing")

    def _lead(self, scope: tuple[str, str], digest: bytes, now: float) -> Lead:
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if oldest.expires > now and len(entries) < self.settings.max_entries:
                break
            entries.popitem(last=False)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        entry = _Entry(digest, now + self.settings.ttl_s, None, future)
        entries[scope] = entry
        return Lead(self, scope, entry)
