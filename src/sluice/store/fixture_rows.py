"""Bulk reads and writes of finished events and quarantine entries, for fixture files.

``sluice fixtures export`` pages through what a store holds since a time, oldest first, a
bounded page at a time (keyset paging on ``(created_at, id)``, so a page costs the same however
deep into the table it is); ``sluice env seed`` writes such rows into another store. Payloads
and the text derived from them pass through each store's own codec both ways: what is read
comes out decrypted, what is written is sealed with the target store's keys (or none).

Only finished events (``done`` and ``dead``) travel: an event still in flight has a job that
belongs to the process running it. Writes skip rows whose ids the target already holds, so a
seed can be repeated.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.errors import StoreError
from sluice.store.at_rest import seal_optional, seal_text
from sluice.store.base import EVENT_COLUMNS, EventRecord, QuarantineItem, StepRecord, Store
from sluice.store.postgres import PostgresStore
from sluice.store.sqlite import SqliteStore
from sluice.store.sqlite_writer import Delta

#: Rows per page when reading, and the most a caller may ask for.
DEFAULT_PAGE = 200
MAX_PAGE = 5_000
_FINISHED = ("done", "dead")
_Q_COLUMNS = "id, source, workflow, tenant, reason, problems, payload, created_at"
_STEP_COLUMNS = "event_id, step, name, attempts, queued_at, started_at, finished_at, output"
_MARK = re.compile(r"\?")


@dataclass(frozen=True, slots=True)
class SeedCounts:
    """What a write added, and what it skipped because the target held the id already."""

    events: int = 0
    steps: int = 0
    quarantine: int = 0
    skipped: int = 0


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...``."""
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return _MARK.sub(number, sql)


async def _select(store: Store, sql: str, params: Sequence[Any]) -> list[Any]:
    if isinstance(store, SqliteStore):
        return await store._read(lambda conn: conn.execute(sql, tuple(params)).fetchall())
    if isinstance(store, PostgresStore):
        return await store._fetch(_numbered(sql), *params)
    raise StoreError(f"fixtures: no bulk access for a {type(store).__name__}")


async def count_finished_events(store: Store, since: float) -> int:
    """How many ``done`` or ``dead`` events were created at or after ``since``."""
    sql = "SELECT count(*) FROM events WHERE state IN ('done', 'dead') AND created_at >= ?"
    return int((await _select(store, sql, (since,)))[0][0])


async def count_quarantine(store: Store, since: float) -> int:
    """How many quarantine entries were created at or after ``since``."""
    sql = "SELECT count(*) FROM quarantine WHERE created_at >= ?"
    return int((await _select(store, sql, (since,)))[0][0])


def _check_page(page: int) -> int:
    if not 1 <= page <= MAX_PAGE:
        raise StoreError(f"fixtures: page size must be 1 to {MAX_PAGE}, got {page}")
    return page


async def iter_finished_events(
    store: Store, since: float, page: int = DEFAULT_PAGE
) -> AsyncIterator[EventRecord]:
    """Every ``done`` or ``dead`` event created at or after ``since``, oldest first, with its
    step results, decoded; at most ``page`` events are held at a time."""
    _check_page(page)
    after: tuple[float, str] = (since, "")
    first = True
    while True:
        # The first page includes ``since`` itself; later ones start after the last row seen.
        cmp = (
            "(created_at > ? OR (created_at = ? AND id >= ?))"
            if first
            else ("(created_at > ? OR (created_at = ? AND id > ?))")
        )
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE state IN ('done', 'dead') AND {cmp}"
            " ORDER BY created_at, id LIMIT ?"
        )
        rows = await _select(store, sql, (after[0], after[0], after[1], page))
        first = False
        if not rows:
            return
        ids = [row[0] for row in rows]
        marks = ",".join("?" * len(ids))
        steps = await _select(
            store,
            f"SELECT {_STEP_COLUMNS} FROM step_results WHERE event_id IN ({marks})"
            " ORDER BY event_id, step",
            ids,
        )
        decode = store.codec.decode
        by_event: dict[str, list[StepRecord]] = {}
        for s in steps:
            by_event.setdefault(s[0], []).append(
                StepRecord(s[1], s[2], s[3], s[4], s[5], s[6], decode(bytes(s[7])))
            )
        for row in rows:
            yield _event(store, row, by_event.get(row[0], []))
        if len(rows) < page:
            return
        after = (float(rows[-1][5]), str(rows[-1][0]))


def _event(store: Store, row: Sequence[Any], steps: Sequence[StepRecord]) -> EventRecord:
    if isinstance(store, (SqliteStore, PostgresStore)):
        return store._event(row, steps)
    raise StoreError(f"fixtures: no bulk access for a {type(store).__name__}")  # pragma: no cover


async def iter_quarantine(
    store: Store, since: float, page: int = DEFAULT_PAGE
) -> AsyncIterator[QuarantineItem]:
    """Every quarantine entry created at or after ``since``, oldest first, decoded."""
    _check_page(page)
    after: tuple[float, str] = (since, "")
    first = True
    while True:
        cmp = (
            "(created_at > ? OR (created_at = ? AND id >= ?))"
            if first
            else ("(created_at > ? OR (created_at = ? AND id > ?))")
        )
        sql = f"SELECT {_Q_COLUMNS} FROM quarantine WHERE {cmp} ORDER BY created_at, id LIMIT ?"
        rows = await _select(store, sql, (after[0], after[0], after[1], page))
        first = False
        if not rows:
            return
        for row in rows:
            if isinstance(store, (SqliteStore, PostgresStore)):
                yield store._item(row)
        if len(rows) < page:
            return
        after = (float(rows[-1][7]), str(rows[-1][0]))


def _event_params(store: Store, event: EventRecord) -> tuple[Any, ...]:
    if event.state.value not in _FINISHED:
        raise StoreError(f"fixtures: event {event.id} is {event.state.value}, not finished")
    encode = store.codec.encode
    return (
        event.id, event.workflow, event.version, event.tenant, event.state.value,
        encode(event.input), None if event.result is None else encode(event.result),
        seal_optional(store.codec, event.error), event.created_at, event.deadline,
        event.finished_at, event.flag,
    )  # fmt: skip


_INSERT_EVENT = (
    "INSERT INTO events(id, workflow, version, tenant, state, input, result, error, created_at,"
    " deadline, finished_at, flag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO NOTHING"
)
_INSERT_STEP = (
    f"INSERT INTO step_results({_STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
_INSERT_QUARANTINE = (
    f"INSERT INTO quarantine({_Q_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO NOTHING"
)


async def write_rows(
    store: Store, events: Sequence[EventRecord], quarantine: Sequence[QuarantineItem]
) -> SeedCounts:
    """Insert finished events (with their step results) and quarantine entries in one
    transaction; ids the store holds already are skipped and counted."""
    codec = store.codec
    event_rows = [_event_params(store, e) for e in events]
    step_rows = [
        [(e.id, s.step, s.name, s.attempts, s.queued_at, s.started_at, s.finished_at,
          codec.encode(s.output)) for s in e.steps]
        for e in events
    ]  # fmt: skip
    q_rows = [
        (q.id, q.source, q.workflow, q.tenant, seal_text(codec, q.reason),
         seal_text(codec, orjson.dumps(list(q.problems)).decode()), codec.encode(q.payload),
         q.created_at)
        for q in quarantine
    ]  # fmt: skip
    if isinstance(store, SqliteStore):

        def op(conn: sqlite3.Connection, delta: Delta) -> SeedCounts:
            added = steps = skipped = queued = 0
            for row, rows in zip(event_rows, step_rows, strict=True):
                if conn.execute(_INSERT_EVENT, row).rowcount != 1:
                    skipped += 1
                    continue
                added += 1
                for step in rows:
                    steps += conn.execute(_INSERT_STEP, step).rowcount
            for q_row in q_rows:
                if conn.execute(_INSERT_QUARANTINE, q_row).rowcount == 1:
                    queued += 1
                else:
                    skipped += 1
            return SeedCounts(added, steps, queued, skipped)

        counts: SeedCounts = await store._write(op)
        return counts
    if isinstance(store, PostgresStore):
        insert_event, insert_step = _numbered(_INSERT_EVENT), _numbered(_INSERT_STEP)
        insert_q = _numbered(_INSERT_QUARANTINE)

        async def run(conn: Any) -> SeedCounts:
            added = steps = skipped = queued = 0
            for row, rows in zip(event_rows, step_rows, strict=True):
                if await conn.fetchval(insert_event + " RETURNING 1", *row) is None:
                    skipped += 1
                    continue
                added += 1
                for step in rows:
                    steps += 1 if await conn.fetchval(insert_step + " RETURNING 1", *step) else 0
            for q_row in q_rows:
                if await conn.fetchval(insert_q + " RETURNING 1", *q_row) is None:
                    skipped += 1
                else:
                    queued += 1
            return SeedCounts(added, steps, queued, skipped)

        written: SeedCounts = await store._in_transaction(run)
        return written
    raise StoreError(f"fixtures: no bulk access for a {type(store).__name__}")
