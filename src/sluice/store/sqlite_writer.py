"""Group commit for SQLite: one writer thread runs queued operations in shared transactions.

Each operation is a function of the connection and a per-batch delta map (queue depth changes
to apply once the transaction commits). The writer drains whatever is queued, up to
``max_batch``, runs it in one ``BEGIN IMMEDIATE ... COMMIT`` and resolves every caller's future
with one hop back to the event loop. So under load one fsync covers hundreds of operations,
and when idle a lone operation commits at once (no waiting for a batch to fill).

If an operation raises, the batch is rolled back and each of its operations is run again in a
transaction of its own, so one bad operation fails alone. Operations must therefore touch
nothing but the connection.

**Background operations** (:meth:`SqliteWriter.submit_background`: the telemetry sink's spans
and ledger rows) yield to the others. The writer sets them aside while other operations are
queued and runs one, in a transaction of its own, only when none is waiting; so a batch of a
thousand span rows no longer sits between a job's step and its commit. One that has waited
``max_defer_s`` runs after the next batch all the same, so they are never starved. Their
transactions commit with ``synchronous=NORMAL``: in WAL mode that skips the fsync of the
commit, and the next job commit's fsync makes them durable too (what a power cut may take is
the telemetry written since the last job commit, never a job).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from sluice.errors import StoreError

T = TypeVar("T")
Delta = Counter[str]
Operation = Callable[[sqlite3.Connection, Delta], Any]
_Item = tuple[Operation, "asyncio.Future[Any]"]
_STOP = object()


class _Background:
    """A queued background operation and when it was queued (see the module docstring)."""

    __slots__ = ("item", "queued_at")

    def __init__(self, item: _Item) -> None:
        self.item = item
        self.queued_at = time.monotonic()


class SqliteWriter:
    """Owns the write connection and its thread; see the module docstring."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_commit: Callable[[Delta], None],
        max_batch: int = 512,
        synchronous: str = "FULL",
        max_defer_s: float = 0.25,
    ) -> None:
        self._connect = connect
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._synchronous = synchronous.upper()
        # Background commits skip the fsync where the store's own setting would take one.
        lax = self._synchronous in ("FULL", "EXTRA")
        self._background_sync = "NORMAL" if lax else None
        self._max_defer_s = max_defer_s
        # Background operations set aside while others wait; the writer thread's alone.
        self._deferred: collections.deque[_Background] = collections.deque()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        self.operations = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer thread; futures are resolved on ``loop``."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="sluice-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, op: Operation) -> asyncio.Future[Any]:
        """Queue ``op``; the returned future resolves once its transaction committed."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise StoreError("the store is not open")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put((op, fut))
        return fut

    def submit_background(self, op: Operation) -> asyncio.Future[Any]:
        """Queue ``op`` behind every other operation (see the module docstring); the returned
        future resolves once its own transaction committed."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise StoreError("the store is not open")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Background((op, fut)))
        return fut

    def stop(self) -> None:
        """Finish queued operations, then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = self._connect()
        deferred = self._deferred
        try:
            while True:
                if deferred:
                    try:
                        first = self._queue.get_nowait()
                    except queue.Empty:  # nothing else waits: one background operation
                        self._resolve([self._run_background(conn, deferred.popleft().item)])
                        continue
                else:
                    first = self._queue.get()
                if first is _STOP:
                    break
                batch: list[_Item] = []
                stop = False
                item = first
                while True:
                    if type(item) is _Background:
                        deferred.append(item)
                    else:
                        batch.append(item)
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                if batch:
                    self._resolve(self._run_batch(conn, batch))
                # Never starved: one that has waited its limit runs now, other work or not.
                if deferred and time.monotonic() - deferred[0].queued_at > self._max_defer_s:
                    self._resolve([self._run_background(conn, deferred.popleft().item)])
                if stop:
                    break
            while deferred:  # stopping: what was queued is still written
                self._resolve([self._run_background(conn, deferred.popleft().item)])
        finally:
            conn.close()

    def _run_background(
        self, conn: sqlite3.Connection, item: _Item
    ) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
        """One background operation in its own transaction, committed without an fsync."""
        if self._background_sync is None:
            return self._run_alone(conn, item)
        conn.execute(f"PRAGMA synchronous={self._background_sync}")
        try:
            return self._run_alone(conn, item)
        finally:
            conn.execute(f"PRAGMA synchronous={self._synchronous}")

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Item]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        delta: Delta = Counter()
        results: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, _ in batch:
                results.append(op(conn, delta))
            conn.execute("COMMIT")
        except Exception:  # noqa: BLE001 - isolate the failing operation below
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) == 1:
                return [self._run_alone(conn, batch[0])]
            return [self._run_alone(conn, item) for item in batch]
        self.batches += 1
        self.operations += len(batch)
        self._on_commit(delta)
        return [(fut, res, None) for (_, fut), res in zip(batch, results, strict=True)]

    def _run_alone(
        self, conn: sqlite3.Connection, item: _Item
    ) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
        op, fut = item
        delta: Delta = Counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = op(conn, delta)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - handed to the caller's future
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = exc if isinstance(exc, StoreError) else _wrap(exc)
            return fut, None, err
        self.batches += 1
        self.operations += 1
        self._on_commit(delta)
        return fut, result, None

    def _resolve(
        self, outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]
    ) -> None:
        assert self._loop is not None
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_settle, outcomes)


def _wrap(exc: Exception) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"SQLite: {type(exc).__name__}: {exc}")
    return exc


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, result, error in outcomes:
        if fut.done():
            continue
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)
