"""Group commit for SQLite: one writer thread runs queued operations in shared transactions.

Each operation is a function of the connection and a per-batch delta map (queue depth changes
to apply once the transaction commits). The writer drains whatever is queued, up to
``max_batch``, runs it in one ``BEGIN IMMEDIATE ... COMMIT`` and resolves every caller's future
with one hop back to the event loop. So under load one fsync covers hundreds of operations,
and when idle a lone operation commits at once (no waiting for a batch to fill).

If an operation raises, the batch is rolled back and each of its operations is run again in a
transaction of its own, so one bad operation fails alone. Operations must therefore touch
nothing but the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from sluice.errors import StoreError

T = TypeVar("T")
Delta = Counter[str]
Operation = Callable[[sqlite3.Connection, Delta], Any]
_Item = tuple[Operation, "asyncio.Future[Any]"]
_STOP = object()


class SqliteWriter:
    """Owns the write connection and its thread; see the module docstring."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_commit: Callable[[Delta], None],
        max_batch: int = 512,
    ) -> None:
        self._connect = connect
        self._on_commit = on_commit
        self._max_batch = max_batch
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

    def stop(self) -> None:
        """Finish queued operations, then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Item] = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                self._resolve(self._run_batch(conn, batch))
                if stop:
                    return
        finally:
            conn.close()

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
