"""The distributed store: PostgreSQL through asyncpg, for a service that spans machines.

Same contract as the SQLite store. Jobs are claimed with ``FOR UPDATE SKIP LOCKED`` so any
number of worker processes on any number of hosts share one queue without blocking each
other; leases carry an owner that beats in ``owners``, on the database clock. Accepts and
completions go through group commit (:mod:`sluice.store.postgres_batch`); every write that
makes work ready notifies the schema's channel, and :meth:`PostgresStore.on_work` /
:meth:`PostgresStore.wait_for_work` let idle workers wait for it instead of polling.

URL: ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME]`` (schema ``sluice`` by
default; every table lives there).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from sluice.errors import ConfigError, NotFoundError, StoreError
from sluice.store import postgres_sql as sql
from sluice.store.at_rest import seal_text
from sluice.store.base import (
    EVENT_COLUMNS,
    Completion,
    EventRecord,
    EventState,
    IdempotencyClaim,
    Job,
    NewEvent,
    Receipt,
    StepRecord,
    event_from_row,
    job_from_row,
)
from sluice.store.codec import IdentityCodec, PayloadCodec
from sluice.store.postgres_batch import GroupCommit
from sluice.store.postgres_governance import PostgresGovernanceMixin
from sluice.store.postgres_ingress import PostgresIngressMixin
from sluice.store.postgres_listen import WorkCallback, WorkListener, channel_for
from sluice.store.postgres_managed import PostgresManagedMixin
from sluice.store.postgres_releases import PostgresReleasesMixin
from sluice.store.postgres_schema import migrate
from sluice.store.postgres_telemetry import PostgresTelemetryMixin

T = TypeVar("T")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
# Errors after which PostgreSQL rolled the transaction back for sure: safe to run it again.
_TRANSIENT = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def parse_url(url: str) -> tuple[str, str]:
    """Split a store URL into the DSN for the driver and the schema name."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"store: {url!r} is not a postgresql:// URL")
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), "sluice")
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(f"store: schema {schema!r} must be a lower-case SQL name")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


async def _claim(conn: asyncpg.Connection, args: tuple[Any, ...]) -> list[Any]:
    # A lease is reversible (see ``PostgresStore._write``): no need to wait for the WAL flush,
    # which is most of a claim's latency on real disks.
    await conn.execute("SET LOCAL synchronous_commit = off")
    return list(await conn.fetch(sql.CLAIM, *args))


def _db_error(exc: BaseException) -> StoreError:
    return StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}")


class PostgresStore(
    PostgresIngressMixin,
    PostgresTelemetryMixin,
    PostgresGovernanceMixin,
    PostgresReleasesMixin,
    PostgresManagedMixin,
):
    """PostgreSQL implementation of :class:`~sluice.store.base.Store`.

    Holds up to ``pool_size`` pooled connections plus one for ``LISTEN`` (``listen=False``
    for processes that never wait for work, such as CLI commands and pure ingress).
    """

    def __init__(
        self,
        url: str,
        codec: PayloadCodec | None = None,
        pool_size: int = 10,
        max_batch: int = 256,
        listen: bool = True,
    ) -> None:
        self.dsn, self.schema = parse_url(url)
        self.codec: PayloadCodec = codec or IdentityCodec()
        self.channel = channel_for(self.schema)
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener = WorkListener(self._connect, self.channel) if listen else None
        self._inserts: GroupCommit[NewEvent, Receipt] = GroupCommit(
            "accepts", self._insert_batch, self._in_transaction, self._apply_delta,
            key=lambda e: e.id, max_batch=max_batch,
        )  # fmt: skip
        self._completions: GroupCommit[Completion, bool] = GroupCommit(
            "completions", self._complete_batch, self._in_transaction, self._apply_delta,
            key=lambda c: (c.job.event_id, c.job.step), max_batch=max_batch,
        )  # fmt: skip
        # Ready jobs per pool as this process last knew them: exact for its own writes,
        # refreshed from the database by the runtime (``queue_depths``) for everyone else's.
        self.depths: Counter[str] = Counter()

    # lifecycle -----------------------------------------------------------------------------
    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, timeout=10)

    async def open(self) -> None:
        """Connect, apply migrations (safe from several processes at once) and start writers."""
        try:
            conn = await self._connect()
            try:
                await migrate(conn, self.schema)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self._pool_size, command_timeout=60,
                server_settings={"search_path": self.schema, "application_name": "sluice"},
            )  # fmt: skip
        except _DB_ERRORS as exc:
            raise _db_error(exc) from exc
        self._inserts.start()
        self._completions.start()
        if self._listener is not None:
            await self._listener.start()
        self.depths = Counter(await self.queue_depths())

    async def aclose(self) -> None:
        """Write what is queued, stop listening, close the connections."""
        await self._inserts.stop()
        await self._completions.stop()
        if self._listener is not None:
            await self._listener.aclose()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # wake-ups ------------------------------------------------------------------------------
    def on_work(self, callback: WorkCallback) -> Callable[[], None]:
        """Call ``callback(pool)`` when any process makes work ready (``None``: maybe any pool).

        Returns a function that unsubscribes. Needs ``listen=True`` (the default).
        """
        if self._listener is None:
            raise StoreError("this store was opened without listen=True")
        return self._listener.on_work(callback)

    async def wait_for_work(self, pool: str, timeout: float) -> bool:
        """Wait until any process announces new work for ``pool``; False after ``timeout``."""
        if self._listener is None:
            raise StoreError("this store was opened without listen=True")
        return await self._listener.wait_for_work(pool, timeout)

    # plumbing ------------------------------------------------------------------------------
    def _apply_delta(self, delta: Counter[str]) -> None:
        for pool, change in delta.items():
            self.depths[pool] = max(0, self.depths[pool] + change)

    async def _in_transaction(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StoreError("the store is not open")
        for attempt in range(5):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    return await fn(conn)
            except _TRANSIENT:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.005 * 2**attempt)
            except StoreError:
                raise
            except _DB_ERRORS as exc:
                raise _db_error(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(
        self, query: str, *args: Any, notify: bool = True, reversible: bool = False
    ) -> list[Any]:
        """Run one statement whose rows are pools made ready; notify and count them.

        ``reversible`` writes (leases, heartbeats, requeues) commit without waiting for the
        WAL flush: if the server crashes before the flush, the write is lost, which leaves a
        job claimable again or an owner looking stale, cases that leases and effects-once
        already handle. The next durable commit of any session flushes them anyway.
        """

        async def run(conn: asyncpg.Connection) -> list[Any]:
            if reversible:
                await conn.execute("SET LOCAL synchronous_commit = off")
            rows = await conn.fetch(query, *args)
            pools = sorted({r[0] for r in rows if r[0] is not None})
            if notify and pools:
                await conn.execute(sql.NOTIFY, self.channel, pools)
            return list(rows)

        rows = await self._in_transaction(run)
        self._apply_delta(Counter(r[0] for r in rows if r[0] is not None))
        return rows

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        if self._pool is None:
            raise StoreError("the store is not open")
        try:
            return list(await self._pool.fetch(query, *args))
        except _DB_ERRORS as exc:
            raise _db_error(exc) from exc

    # writes --------------------------------------------------------------------------------
    async def insert_event(
        self, event: NewEvent, idempotency: IdempotencyClaim | None = None
    ) -> Receipt:
        """Write the event and its first job in one transaction.

        Without an idempotency key the transaction is shared with other accepts (group
        commit); with one, the key is claimed in the event's own transaction.
        """
        if idempotency is not None:
            return await self._insert_claimed(event, idempotency)
        return await self._inserts.submit(event)

    async def _insert_batch(
        self, conn: asyncpg.Connection, events: Sequence[NewEvent]
    ) -> tuple[list[Receipt], Counter[str]]:
        delta = await self.insert_rows(conn, events)
        return [Receipt(e.id, "accepted") for e in events], delta

    async def claim(self, pool: str, limit: int, owner: str, lease_s: float) -> list[Job]:
        """Lease up to ``limit`` ready jobs of ``pool``, oldest first, skipping locked ones."""
        rows = await self._in_transaction(partial(_claim, args=(owner, lease_s, pool, limit)))
        self._apply_delta(Counter({pool: -len(rows)}))
        decode = self.codec.decode
        return [job_from_row(r, owner, decode) for r in sorted(rows, key=lambda r: r[9])]

    async def complete(self, completion: Completion) -> bool:
        """Record the step result and the next job (or the event's end) in one transaction."""
        return await self._completions.submit(completion)

    async def _complete_batch(
        self, conn: asyncpg.Connection, items: Sequence[Completion]
    ) -> tuple[list[bool], Counter[str]]:
        encode = self.codec.encode
        jobs = [c.job for c in items]
        rows = await conn.fetch(
            sql.COMPLETE, [j.id for j in jobs], [j.event_id for j in jobs],
            [j.step for j in jobs], [c.step_name for c in items], [j.attempts for j in jobs],
            [j.ready_at for j in jobs], [c.started_at for c in items],
            [c.finished_at for c in items], [encode(c.output) for c in items],
            [c.next_pool for c in items], [j.owner for j in jobs], [j.workflow for j in jobs],
            [j.version for j in jobs], [j.tenant for j in jobs], [j.deadline for j in jobs],
            self.channel, [j.trace for j in jobs], [j.flag for j in jobs],
        )  # fmt: skip
        written = {(r[1], r[2]) for r in rows if r[0] == "r"}
        delta = Counter(r[1] for r in rows if r[0] == "n")
        return [(j.event_id, j.step) in written for j in jobs], delta

    async def retry(self, job: Job, run_at: float, error: str) -> None:
        """Return the job to its queue to run not before ``run_at``."""
        sealed = seal_text(self.codec, error)
        await self._write(sql.RETRY, run_at, sealed, job.id, job.owner, reversible=True)

    async def bury(self, job: Job, error: str) -> None:
        """Dead-letter the job and its event (the error sealed like a payload)."""
        await self._write(sql.BURY, seal_text(self.codec, error), job.id, job.owner, notify=False)

    async def heartbeat(self, owner: str) -> None:
        """Record that ``owner`` is alive, on the database clock."""
        await self._write(sql.HEARTBEAT, owner, notify=False, reversible=True)

    async def release(self, owner: str) -> int:
        """Return ``owner``'s leased jobs to their queues and forget the owner."""
        return len(await self._write(sql.RELEASE, owner, reversible=True))

    async def reclaim(self, stale_after_s: float) -> int:
        """Requeue jobs whose lease expired or whose owner stopped beating."""
        return len(await self._write(sql.RECLAIM, stale_after_s, reversible=True))

    async def replay(self, event_id: str, deadline: float) -> bool:
        """Requeue a dead event's failed job with attempts reset and a fresh deadline."""
        return bool(await self._write(sql.REPLAY, deadline, event_id))

    # reads ---------------------------------------------------------------------------------
    def _event(self, row: Sequence[Any], steps: Sequence[StepRecord] = ()) -> EventRecord:
        return event_from_row(row, self.codec, steps)

    async def get_event(self, event_id: str, with_steps: bool = True) -> EventRecord:
        """Return one event with its step results."""
        rows = await self._fetch(sql.GET_EVENT, event_id)
        if not rows:
            raise NotFoundError(f"no event {event_id!r}")
        steps: list[StepRecord] = []
        if with_steps:
            decode = self.codec.decode
            steps = [
                StepRecord(s[0], s[1], s[2], s[3], s[4], s[5], decode(s[6]))
                for s in await self._fetch(sql.GET_STEPS, event_id)
            ]
        return self._event(rows[0], steps)

    async def dead_step(self, event_id: str) -> tuple[int, int] | None:
        """The step a dead event died at and its attempts (from its dead-lettered job)."""
        rows = await self._fetch(
            "SELECT step, attempts FROM jobs WHERE event_id = $1 AND state = 'dead'", event_id
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    async def list_events(
        self, state: EventState | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """Newest events first."""
        clauses, params = [], []
        if state is not None:
            params.append(state.value)
            clauses.append(f"state = ${len(params)}")
        if workflow is not None:
            params.append(workflow)
            clauses.append(f"workflow = ${len(params)}")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        query = (
            f"SELECT {EVENT_COLUMNS} FROM events{where}"
            f" ORDER BY created_at DESC LIMIT ${len(params) + 1}"
        )
        return [self._event(r) for r in await self._fetch(query, *params, limit)]

    async def event_states(self, event_ids: Sequence[str]) -> Mapping[str, EventState]:
        """States of the given events."""
        out: dict[str, EventState] = {}
        for start in range(0, len(event_ids), 5000):
            chunk = list(event_ids[start : start + 5000])
            rows = await self._fetch(sql.EVENT_STATES, chunk)
            out.update({r[0]: EventState(r[1]) for r in rows})
        return out

    async def queue_depths(self) -> Mapping[str, int]:
        """Ready jobs per pool, counted in the database."""
        return {r[0]: int(r[1]) for r in await self._fetch(sql.QUEUE_DEPTHS)}
