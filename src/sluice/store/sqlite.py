"""The embedded store: SQLite in WAL mode, written through one group-commit thread.

Writes go through :class:`~sluice.store.sqlite_writer.SqliteWriter`; reads use a second
connection on a single reader thread (WAL lets readers run beside the writer). Several
processes may share one database file: leases carry an owner, owners beat in ``owners``, and
the queue is always claimed inside a write transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sluice.errors import NotFoundError, StoreError
from sluice.store.at_rest import seal_text
from sluice.store.base import (
    EVENT_COLUMNS,
    Completion,
    EventRecord,
    EventState,
    Job,
    StepRecord,
    event_from_row,
    job_from_row,
)
from sluice.store.codec import IdentityCodec, PayloadCodec
from sluice.store.sqlite_governance import SqliteGovernanceMixin
from sluice.store.sqlite_ingress import SqliteIngressMixin
from sluice.store.sqlite_managed import SqliteManagedMixin
from sluice.store.sqlite_releases import SqliteReleasesMixin
from sluice.store.sqlite_schema import migrate
from sluice.store.sqlite_telemetry import SqliteTelemetryMixin
from sluice.store.sqlite_writer import Delta, SqliteWriter

T = TypeVar("T")


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


_JOB_COLUMNS = (
    "id, event_id, step, pool, workflow, version, tenant, attempts, input, ready_at, deadline,"
    " trace, flag"
)


class SqliteStore(
    SqliteIngressMixin,
    SqliteTelemetryMixin,
    SqliteGovernanceMixin,
    SqliteReleasesMixin,
    SqliteManagedMixin,
):
    """SQLite implementation of :class:`~sluice.store.base.Store`."""

    def __init__(
        self,
        path: Path,
        codec: PayloadCodec | None = None,
        synchronous: str = "full",
        max_batch: int = 512,
    ) -> None:
        self.path = path
        self.codec: PayloadCodec = codec or IdentityCodec()
        self._synchronous = synchronous.upper()
        self._writer = SqliteWriter(self._connect, self._apply_delta, max_batch=max_batch)
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        # Ready jobs per pool as this process last knew them: exact for its own writes,
        # refreshed from the database by ``queue_depths`` for everyone else's.
        self.depths: Counter[str] = Counter()

    # lifecycle -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        # Two processes opening a new file at once (``serve --processes``): switching it to WAL
        # takes a lock for which SQLite does not wait (busy handler or not), so wait here.
        deadline = time.monotonic() + 30.0
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.05)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    async def open(self) -> None:
        """Create the file if needed, apply migrations, start the writer and reader threads."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            migrate(conn)
        finally:
            conn.close()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sluice-sqlite-reader")
        self._read_conn = self._connect()
        self._writer.start(asyncio.get_running_loop())
        self.depths = Counter(await self.queue_depths())

    async def aclose(self) -> None:
        """Commit what is queued and close both connections."""
        await asyncio.to_thread(self._writer.stop)
        if self._reader is not None:
            conn = self._read_conn
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(self._reader, conn.close)
            self._reader.shutdown(wait=True)
            self._reader = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _apply_delta(self, delta: Delta) -> None:
        # Runs on the writer thread after a commit; Counter updates of a few ints are atomic
        # enough under the GIL for a gauge that is refreshed from the database anyway.
        for pool, change in delta.items():
            self.depths[pool] = max(0, self.depths[pool] + change)

    async def _write(self, op: Callable[[sqlite3.Connection, Delta], T]) -> T:
        result: T = await self._writer.submit(op)
        return result

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None or self._read_conn is None:
            raise StoreError("the store is not open")
        conn = self._read_conn
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, fn, conn)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {type(exc).__name__}: {exc}") from exc

    # writes --------------------------------------------------------------------------------
    async def claim(self, pool: str, limit: int, owner: str, lease_s: float) -> list[Job]:
        """Lease up to ``limit`` ready jobs of ``pool``, oldest first."""

        def op(conn: sqlite3.Connection, delta: Delta) -> list[tuple[Any, ...]]:
            now = time.time()
            rows = conn.execute(
                "UPDATE jobs SET state = 'leased', owner = ?, lease_until = ?,"
                " attempts = attempts + 1 WHERE id IN (SELECT id FROM jobs WHERE pool = ?"
                " AND state = 'ready' AND run_at <= ? ORDER BY run_at LIMIT ?)"
                f" RETURNING {_JOB_COLUMNS}",
                (owner, now + lease_s, pool, now, limit),
            ).fetchall()
            delta[pool] -= len(rows)
            return rows

        rows = await self._write(op)
        decode = self.codec.decode
        return [job_from_row(r, owner, decode) for r in rows]

    async def complete(self, completion: Completion) -> bool:
        """Record the step result and the next job (or the event's end) in one transaction."""
        job = completion.job
        stored = self.codec.encode(completion.output)

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            cur = conn.execute(
                "INSERT INTO step_results(event_id, step, name, attempts, queued_at, started_at,"
                " finished_at, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (job.event_id, job.step, completion.step_name, job.attempts, job.ready_at,
                 completion.started_at, completion.finished_at, stored),
            )  # fmt: skip
            if cur.rowcount != 1:
                # A re-run after a lost lease: the first result stands, change nothing else.
                conn.execute("DELETE FROM jobs WHERE id = ? AND owner = ?", (job.id, job.owner))
                return False
            conn.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
            if completion.next_pool is None:
                conn.execute(
                    "UPDATE events SET state = 'done', result = ?, finished_at = ? WHERE id = ?",
                    (stored, completion.finished_at, job.event_id),
                )
            else:
                conn.execute(
                    "INSERT INTO jobs(event_id, step, pool, workflow, version, tenant, state,"
                    " input, ready_at, run_at, deadline, trace, flag) VALUES (?, ?, ?, ?, ?, ?,"
                    " 'ready', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (job.event_id, job.step + 1, completion.next_pool, job.workflow,
                     job.version, job.tenant, stored, completion.finished_at,
                     completion.finished_at, job.deadline, job.trace, job.flag),
                )  # fmt: skip
                delta[completion.next_pool] += 1
            return True

        result: bool = await self._write(op)
        return result

    async def retry(self, job: Job, run_at: float, error: str) -> None:
        """Return the job to its queue to run not before ``run_at``."""
        sealed = seal_text(self.codec, error)

        def op(conn: sqlite3.Connection, delta: Delta) -> None:
            cur = conn.execute(
                "UPDATE jobs SET state = 'ready', owner = NULL, lease_until = NULL,"
                " run_at = ?, ready_at = ?, last_error = ? WHERE id = ? AND owner = ?"
                " AND state = 'leased'",
                (run_at, run_at, sealed, job.id, job.owner),
            )
            delta[job.pool] += cur.rowcount

        await self._write(op)

    async def bury(self, job: Job, error: str) -> None:
        """Dead-letter the job and its event (the error sealed like a payload)."""
        sealed = seal_text(self.codec, error)

        def op(conn: sqlite3.Connection, delta: Delta) -> None:
            cur = conn.execute(
                "UPDATE jobs SET state = 'dead', owner = NULL, lease_until = NULL,"
                " last_error = ? WHERE id = ? AND owner = ? AND state = 'leased'",
                (sealed, job.id, job.owner),
            )
            if cur.rowcount == 1:
                conn.execute(
                    "UPDATE events SET state = 'dead', error = ?, finished_at = ? WHERE id = ?",
                    (sealed, time.time(), job.event_id),
                )

        await self._write(op)

    async def heartbeat(self, owner: str) -> None:
        """Record that ``owner`` is alive."""

        def op(conn: sqlite3.Connection, delta: Delta) -> None:
            conn.execute(
                "INSERT INTO owners(owner, beat_at) VALUES (?, ?) ON CONFLICT(owner)"
                " DO UPDATE SET beat_at = excluded.beat_at",
                (owner, time.time()),
            )

        await self._write(op)

    async def release(self, owner: str) -> int:
        """Return ``owner``'s leased jobs to their queues and forget the owner."""

        def op(conn: sqlite3.Connection, delta: Delta) -> int:
            rows = conn.execute(
                "UPDATE jobs SET state = 'ready', owner = NULL, lease_until = NULL,"
                " attempts = max(attempts - 1, 0) WHERE state = 'leased' AND owner = ?"
                " RETURNING pool",
                (owner,),
            ).fetchall()
            conn.execute("DELETE FROM owners WHERE owner = ?", (owner,))
            for (pool,) in rows:
                delta[pool] += 1
            return len(rows)

        released: int = await self._write(op)
        return released

    async def reclaim(self, stale_after_s: float) -> int:
        """Requeue jobs whose lease expired or whose owner stopped beating."""

        def op(conn: sqlite3.Connection, delta: Delta) -> int:
            now = time.time()
            rows = conn.execute(
                "UPDATE jobs SET state = 'ready', owner = NULL, lease_until = NULL, run_at = ?"
                " WHERE state = 'leased' AND (lease_until < ? OR owner NOT IN"
                " (SELECT owner FROM owners WHERE beat_at >= ?)) RETURNING pool",
                (now, now, now - stale_after_s),
            ).fetchall()
            conn.execute("DELETE FROM owners WHERE beat_at < ?", (now - 10 * stale_after_s,))
            for (pool,) in rows:
                delta[pool] += 1
            return len(rows)

        reclaimed: int = await self._write(op)
        return reclaimed

    async def replay(self, event_id: str, deadline: float) -> bool:
        """Requeue a dead event's failed job with attempts reset and a fresh deadline."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            now = time.time()
            rows = conn.execute(
                "UPDATE jobs SET state = 'ready', attempts = 0, run_at = ?, ready_at = ?,"
                " deadline = ?, last_error = NULL WHERE event_id = ? AND state = 'dead'"
                " RETURNING pool",
                (now, now, deadline, event_id),
            ).fetchall()
            if not rows:
                return False
            conn.execute(
                "UPDATE events SET state = 'accepted', error = NULL, finished_at = NULL,"
                " deadline = ? WHERE id = ?",
                (deadline, event_id),
            )
            delta[rows[0][0]] += 1
            return True

        replayed: bool = await self._write(op)
        return replayed

    # reads ---------------------------------------------------------------------------------
    def _event(self, row: Sequence[Any], steps: Sequence[StepRecord] = ()) -> EventRecord:
        return event_from_row(row, self.codec, steps)

    async def get_event(self, event_id: str, with_steps: bool = True) -> EventRecord:
        """Return one event with its step results."""

        def read(conn: sqlite3.Connection) -> tuple[Any, list[Any]]:
            row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)
            ).fetchone()
            steps = []
            if row is not None and with_steps:
                steps = conn.execute(
                    "SELECT step, name, attempts, queued_at, started_at, finished_at, output"
                    " FROM step_results WHERE event_id = ? ORDER BY step",
                    (event_id,),
                ).fetchall()
            return row, steps

        row, steps = await self._read(read)
        if row is None:
            raise NotFoundError(f"no event {event_id!r}")
        decode = self.codec.decode
        records = [StepRecord(s[0], s[1], s[2], s[3], s[4], s[5], decode(s[6])) for s in steps]
        return self._event(row, records)

    async def dead_step(self, event_id: str) -> tuple[int, int] | None:
        """The step a dead event died at and its attempts (from its dead-lettered job)."""
        sql = "SELECT step, attempts FROM jobs WHERE event_id = ? AND state = 'dead'"
        row = await self._read(lambda c: c.execute(sql, (event_id,)).fetchone())
        return None if row is None else (int(row[0]), int(row[1]))

    async def list_events(
        self, state: EventState | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """Newest events first."""
        clauses, params = [], []
        if state is not None:
            clauses.append("state = ?")
            params.append(state.value)
        if workflow is not None:
            clauses.append("workflow = ?")
            params.append(workflow)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY created_at DESC LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, (*params, limit)).fetchall())
        return [self._event(r) for r in rows]

    async def event_states(self, event_ids: Sequence[str]) -> Mapping[str, EventState]:
        """States of the given events."""
        out: dict[str, EventState] = {}
        for start in range(0, len(event_ids), 500):
            chunk = list(event_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, state FROM events WHERE id IN ({marks})"
            rows = await self._read(partial(_fetch_all, sql=sql, params=chunk))
            out.update({r[0]: EventState(r[1]) for r in rows})
        return out

    async def queue_depths(self) -> Mapping[str, int]:
        """Ready jobs per pool, counted in the database."""
        sql = "SELECT pool, count(*) FROM jobs WHERE state = 'ready' GROUP BY pool"
        rows = await self._read(lambda c: c.execute(sql).fetchall())
        return {pool: int(n) for pool, n in rows}
