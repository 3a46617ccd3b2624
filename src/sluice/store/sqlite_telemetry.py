"""SQLite side of telemetry: the local span store and the cost ledger.

Rows arrive in batches from :class:`~sluice.telemetry.sink.TelemetrySink` and are written as
one operation of the group-commit writer (one ``executemany`` per table), so telemetry shares
the fsync of the events it describes instead of adding commits of its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from sluice.store.base import (
    COST_GROUPS,
    CostRecord,
    CostTotal,
    SpanRecord,
    cost_total_from_row,
)
from sluice.store.sqlite_writer import Delta
from sluice.traceparent import trace_id_of

_SPAN_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, start_ns, end_ns, status, event_id, attributes"
)
_COST_COLUMNS = (
    "ts, event_id, trace_id, tenant, workflow, step, model, input_tokens, output_tokens, cost,"
    " cached, template"
)


def cost_group(by: str) -> str:
    """``by`` checked against the ledger's groupable columns (it becomes part of the SQL)."""
    if by not in COST_GROUPS:
        from sluice.errors import ConfigError

        raise ConfigError(f"costs can be grouped by {', '.join(COST_GROUPS)}; not {by!r}")
    return by


def _json(attributes: Mapping[str, Any]) -> bytes:
    """Span attributes as JSON (orjson takes a dict, not any mapping)."""
    return orjson.dumps(attributes if type(attributes) is dict else dict(attributes))


def span_from_row(row: Sequence[Any]) -> SpanRecord:
    """A :class:`SpanRecord` from a row in ``_SPAN_COLUMNS`` order (attributes as JSON)."""
    attributes = row[9]
    if isinstance(attributes, (bytes, str)):
        attributes = orjson.loads(attributes)
    return SpanRecord(
        trace_id=row[0], span_id=row[1], parent_id=row[2], name=row[3], kind=row[4],
        start_ns=int(row[5]), end_ns=int(row[6]), status=row[7], event_id=row[8],
        attributes=attributes,
    )  # fmt: skip


class SqliteTelemetryMixin:
    """Span-store and ledger methods of the SQLite store (see the module docstring)."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]

    async def write_telemetry(
        self, spans: Sequence[SpanRecord], costs: Sequence[CostRecord]
    ) -> None:
        """Append spans and ledger rows in one transaction of the group-commit writer."""
        if not spans and not costs:
            return

        def op(conn: sqlite3.Connection, delta: Delta) -> None:
            # Rows are built here, in the writer's thread, one at a time as SQLite takes them
            # (``spans`` may build each record only when read: see telemetry/sink.py), so
            # neither the encoding nor a batch of row objects sits on the event loop.
            if spans:
                conn.executemany(
                    f"INSERT INTO spans({_SPAN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        (s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.start_ns,
                         s.end_ns, s.status, s.event_id, _json(s.attributes))
                        for s in spans
                    ),
                )  # fmt: skip
            if costs:
                conn.executemany(
                    f"INSERT INTO costs({_COST_COLUMNS}) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        (c.ts, c.event_id, c.trace_id, c.tenant, c.workflow, c.step, c.model,
                         c.input_tokens, c.output_tokens, c.cost, int(c.cached), c.template)
                        for c in costs
                    ),
                )  # fmt: skip

        await self._write(op)

    async def trace_spans(self, trace_id: str) -> list[SpanRecord]:
        """Every stored span of one trace, by start time."""
        sql = f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, id"
        rows = await self._read(lambda c: c.execute(sql, (trace_id,)).fetchall())
        return [span_from_row(r) for r in rows]

    async def event_trace_id(self, event_id: str) -> str | None:
        """The event's trace id: from its stored traceparent, else from its spans."""

        def read(conn: sqlite3.Connection) -> tuple[Any, Any]:
            row = conn.execute("SELECT trace FROM events WHERE id = ?", (event_id,)).fetchone()
            span = conn.execute(
                "SELECT trace_id FROM spans WHERE event_id = ? LIMIT 1", (event_id,)
            ).fetchone()
            return row, span

        row, span = await self._read(read)
        if row is not None and row[0]:
            found = trace_id_of(row[0])
            if found is not None:
                return found
        return None if span is None else str(span[0])

    async def cost_totals(self, by: str, since: float) -> list[CostTotal]:
        """Ledger rows since ``since`` summed per ``by``, costliest first."""
        column = cost_group(by)
        sql = (
            f"SELECT {column}, count(*), sum(cached), sum(input_tokens), sum(output_tokens),"
            f" sum(cost) FROM costs WHERE ts >= ? GROUP BY {column} ORDER BY sum(cost) DESC,"
            f" {column}"
        )
        rows = await self._read(lambda c: c.execute(sql, (since,)).fetchall())
        return [cost_total_from_row(r) for r in rows]

    async def purge_telemetry(
        self, max_spans: int, spans_before: float, costs_before: float
    ) -> int:
        """Keep at most ``max_spans`` spans, none from before ``spans_before`` and no ledger
        row from before ``costs_before`` (epoch seconds)."""
        cutoff_ns = int(spans_before * 1e9)

        def op(conn: sqlite3.Connection, delta: Delta) -> int:
            # Ids grow with insertion: the newest ``max_spans`` rows are the highest ids.
            deleted = conn.execute(
                "DELETE FROM spans WHERE id <= (SELECT max(id) FROM spans) - ?", (max_spans,)
            ).rowcount
            deleted += conn.execute("DELETE FROM spans WHERE start_ns < ?", (cutoff_ns,)).rowcount
            deleted += conn.execute("DELETE FROM costs WHERE ts < ?", (costs_before,)).rowcount
            return int(deleted)

        purged: int = await self._write(op)
        return purged
