"""Group commit for PostgreSQL: queued writes of one kind share a statement and a transaction.

Callers submit items (accepts, completions); a flusher task takes whatever is queued, up to
``max_batch``, and runs them as one set-based statement in one transaction. When idle a lone
item is written at once; under load one commit covers many items and the queue itself is the
batching window, so no timer adds latency. Up to ``parallel`` flushers run at once, each on
its own connection: while one batch travels to the server and commits, the next one forms and
is sent, so the round trip does not cap throughput.

Two items with the same ``key`` never share a batch (a re-run completing beside the original
must see the original's result). If a batch fails, each of its items is run again alone, so
one bad item (a duplicate event id) fails alone. ``run`` must touch nothing but the connection
until it returns; ``on_commit`` then sees its return value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from sluice.errors import StoreError

I = TypeVar("I")  # noqa: E741 - the conventional name for an item type
R = TypeVar("R")
#: Runs items in the current transaction; returns one result per item and a commit note.
BatchRun = Callable[[Any, Sequence[I]], Awaitable[tuple[list[R], Any]]]
#: Opens a connection in a transaction, runs the function in it, retrying transient failures.
InTransaction = Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]

log = logging.getLogger("sluice.store")


class GroupCommit(Generic[I, R]):
    """One queue of writes of one kind; see the module docstring."""

    def __init__(
        self,
        name: str,
        run: BatchRun[I, R],
        in_transaction: InTransaction,
        on_commit: Callable[[Any], None],
        key: Callable[[I], Hashable],
        max_batch: int = 256,
        parallel: int = 2,
    ) -> None:
        self.name = name
        self._run = run
        self._in_transaction = in_transaction
        self._on_commit = on_commit
        self._key = key
        self._max_batch = max_batch
        self._parallel = parallel
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        """Start the flusher task on the running loop."""
        self._closing = False
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name=f"pg-{self.name}-{n}")
            for n in range(self._parallel)
        ]

    async def submit(self, item: I) -> R:
        """Queue ``item``; return its result once its transaction committed."""
        if not self._tasks or self._closing:
            raise StoreError("the store is not open")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        self._ready.set()
        return await fut

    async def stop(self) -> None:
        """Write what is queued, then stop the flusher."""
        self._closing = True
        self._ready.set()
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks)

    async def _flush_loop(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
            batch = self._take()
            try:
                await self._flush(batch)
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.cancel()
                raise

    def _take(self) -> list[tuple[I, asyncio.Future[R]]]:
        batch: list[tuple[I, asyncio.Future[R]]] = []
        later: list[tuple[I, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        for entry in self._queue:
            key = self._key(entry[0])
            if len(batch) >= self._max_batch or key in keys:
                later.append(entry)
            else:
                keys.add(key)
                batch.append(entry)
        self._queue = later
        return batch

    async def _flush(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results, note = await self._in_transaction(lambda conn: self._run(conn, items))
        except Exception as exc:  # noqa: BLE001 - isolate the failing item below
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            log.debug("%s batch of %d failed (%s); writing items alone", self.name, len(batch), exc)
            for entry in batch:
                await self._flush([entry])
            return
        self.batches += 1
        self.items += len(batch)
        self._on_commit(note)
        for (_, fut), result in zip(batch, results, strict=True):
            _settle(fut, result=result)


def _settle(
    fut: asyncio.Future[Any], result: Any = None, error: BaseException | None = None
) -> None:
    # The caller may have been cancelled while its item was in flight: nobody waits any more.
    with contextlib.suppress(asyncio.InvalidStateError):
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)
