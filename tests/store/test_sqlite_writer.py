"""The SQLite writer's background operations: behind job writes, never starved, durable.

A real writer thread on a real SQLite file; an operation that waits on a threading event holds
the writer busy so that the queue's contents at the moment it frees up are known.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluice.store.sqlite import SqliteStore
from sluice.store.sqlite_writer import Delta, SqliteWriter


def _connect(path: Path) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS log (name TEXT NOT NULL, sync INTEGER)")
        return conn

    return connect


def _logging(name: str) -> Callable[[sqlite3.Connection, Delta], int]:
    """An operation that logs its name and the connection's ``synchronous`` setting."""

    def op(conn: sqlite3.Connection, delta: Delta) -> int:
        sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("INSERT INTO log(name, sync) VALUES (?, ?)", (name, sync))
        return sync

    return op


def _blocking(started: threading.Event, release: threading.Event) -> Callable[..., None]:
    def op(conn: sqlite3.Connection, delta: Delta) -> None:
        started.set()
        release.wait(10)

    return op


def _log(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT name, sync FROM log ORDER BY rowid")]


async def _writer(path: Path, **options: Any) -> SqliteWriter:
    writer = SqliteWriter(_connect(path), lambda delta: None, **options)
    writer.start(asyncio.get_running_loop())
    return writer


async def test_background_operations_wait_for_the_others(tmp_path: Path) -> None:
    """Queued together, job writes commit first (in one batch), the background ones after,
    each without an fsync of its own (synchronous=NORMAL), and FULL is back for the jobs."""
    path = tmp_path / "w.db"
    writer = await _writer(path)
    started, release = threading.Event(), threading.Event()
    try:
        busy = writer.submit(_blocking(started, release))
        await asyncio.to_thread(started.wait, 10)
        futures = [
            writer.submit_background(_logging("spans 1")),
            writer.submit(_logging("job 1")),
            writer.submit_background(_logging("spans 2")),
            writer.submit(_logging("job 2")),
        ]
        release.set()
        await busy
        results = await asyncio.gather(*futures)
        after = await writer.submit(_logging("job 3"))
    finally:
        release.set()
        await asyncio.to_thread(writer.stop)
    full, normal = 2, 1
    assert _log(path) == [
        ("job 1", full), ("job 2", full), ("spans 1", normal), ("spans 2", normal),
        ("job 3", full),
    ]  # fmt: skip
    assert results == [normal, full, normal, full]
    assert after == full
    # The two job writes shared one commit; each background operation had its own.
    assert writer.batches == 1 + 1 + 2 + 1


async def test_a_background_operation_is_not_starved(tmp_path: Path) -> None:
    """One that has waited ``max_defer_s`` runs after the next batch, work waiting or not."""
    path = tmp_path / "w.db"
    writer = await _writer(path, max_defer_s=0.0)
    started, release = threading.Event(), threading.Event()
    try:
        busy = writer.submit(_blocking(started, release))
        await asyncio.to_thread(started.wait, 10)
        background = writer.submit_background(_logging("spans"))
        first = writer.submit(_logging("job 1"))
        second_started, second_release = threading.Event(), threading.Event()
        # The writer's queue holds the background operation, a job write and a blocking
        # one: with max_defer_s=0 the background one runs after that first batch.
        blocker = writer.submit(_blocking(second_started, second_release))
        release.set()
        await busy
        await asyncio.to_thread(second_started.wait, 10)
        later = writer.submit(_logging("job 2"))
        second_release.set()
        await asyncio.gather(background, first, blocker, later)
    finally:
        release.set()
        await asyncio.to_thread(writer.stop)
    assert [name for name, _ in _log(path)] == ["job 1", "spans", "job 2"]


async def test_stopping_writes_what_is_deferred(tmp_path: Path) -> None:
    """A background operation queued before the stop is committed, not dropped."""
    path = tmp_path / "w.db"
    writer = await _writer(path)
    started, release = threading.Event(), threading.Event()
    busy = writer.submit(_blocking(started, release))
    await asyncio.to_thread(started.wait, 10)
    background = writer.submit_background(_logging("spans"))
    stopping = asyncio.create_task(asyncio.to_thread(writer.stop))
    release.set()
    await busy
    await stopping
    assert await background == 1
    assert _log(path) == [("spans", 1)]


async def test_store_writes_telemetry_in_chunks_behind_jobs(tmp_path: Path) -> None:
    """The store's telemetry goes through the background queue, a chunk an operation; a
    failing chunk fails the write (the sink counts it dropped)."""
    from sluice.store import sqlite_telemetry
    from sluice.store.base import CostRecord, SpanRecord

    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        spans = [
            SpanRecord(f"{i:032x}", f"{i:016x}", None, "step", "internal", i, i + 1, "ok",
                       None, {"n": i})
            for i in range(sqlite_telemetry.CHUNK * 2 + 5)
        ]  # fmt: skip
        costs = [CostRecord(1.0, "e", None, "t", "w", "s", "m", 1, 2, 0.1, False, None)]
        before = store._writer.batches
        await store.write_telemetry(spans, costs)
        assert store._writer.batches - before == 3  # three chunks, three transactions
        stored = await store._read(lambda c: c.execute("SELECT count(*) FROM spans").fetchone())
        assert stored[0] == len(spans)
        assert (await store.cost_totals("tenant", 0.0))[0].calls == 1
    finally:
        await store.aclose()
