"""PostgreSQL side of telemetry: the local span store and the cost ledger.

A batch of spans and a batch of ledger rows are each one ``INSERT ... SELECT FROM unnest``
(one array per column), so any batch size is one round trip, written without waiting for the
WAL flush: losing the last second of telemetry in a server crash is acceptable, making every
step wait for it is not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from sluice.store.base import CostRecord, CostTotal, SpanRecord, cost_total_from_row
from sluice.store.sqlite_telemetry import cost_group, span_from_row
from sluice.traceparent import trace_id_of

_SPAN_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, start_ns, end_ns, status, event_id, attributes"
)
_INSERT_SPANS = f"""
INSERT INTO spans({_SPAN_COLUMNS})
SELECT t, s, p, n, k, a, b, st, e, attr::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
            $7::bigint[], $8::text[], $9::text[], $10::text[])
    AS u(t, s, p, n, k, a, b, st, e, attr)
"""
_INSERT_COSTS = """
INSERT INTO costs(ts, event_id, trace_id, tenant, workflow, step, model, input_tokens,
                  output_tokens, cost, cached, template)
SELECT * FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::bigint[], $9::bigint[], $10::float8[], $11::bool[],
                     $12::text[])
"""


def _json(attributes: Mapping[str, Any]) -> str:
    """Span attributes as JSON text (orjson takes a dict, not any mapping)."""
    return orjson.dumps(attributes if type(attributes) is dict else dict(attributes)).decode()


def _columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column (``unnest`` takes an array per column)."""
    return [list(column) for column in zip(*rows, strict=True)]


class PostgresTelemetryMixin:
    """Span-store and ledger methods of the PostgreSQL store (see the module docstring)."""

    _in_transaction: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
    _fetch: Callable[..., Awaitable[list[Any]]]

    async def write_telemetry(
        self, spans: Sequence[SpanRecord], costs: Sequence[CostRecord]
    ) -> None:
        """Append spans and ledger rows in one transaction."""
        if not spans and not costs:
            return

        # Each batch read once (``spans`` may build each record only when read), then
        # turned into one array per column.
        span_columns = _columns(
            (s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.start_ns, s.end_ns,
             s.status, s.event_id, _json(s.attributes))
            for s in spans
        )  # fmt: skip
        cost_columns = _columns(
            (c.ts, c.event_id, c.trace_id, c.tenant, c.workflow, c.step, c.model,
             c.input_tokens, c.output_tokens, c.cost, c.cached, c.template)
            for c in costs
        )  # fmt: skip

        async def run(conn: Any) -> None:
            await conn.execute("SET LOCAL synchronous_commit = off")
            if spans:
                await conn.execute(_INSERT_SPANS, *span_columns)
            if costs:
                await conn.execute(_INSERT_COSTS, *cost_columns)

        await self._in_transaction(run)

    async def trace_spans(self, trace_id: str) -> list[SpanRecord]:
        """Every stored span of one trace, by start time."""
        rows = await self._fetch(
            f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = $1 ORDER BY start_ns, id",
            trace_id,
        )
        return [span_from_row(r) for r in rows]

    async def event_trace_id(self, event_id: str) -> str | None:
        """The event's trace id: from its stored traceparent, else from its spans."""
        rows = await self._fetch("SELECT trace FROM events WHERE id = $1", event_id)
        if rows and rows[0][0]:
            found = trace_id_of(rows[0][0])
            if found is not None:
                return found
        spans = await self._fetch(
            "SELECT trace_id FROM spans WHERE event_id = $1 LIMIT 1", event_id
        )
        return str(spans[0][0]) if spans else None

    async def cost_totals(self, by: str, since: float) -> list[CostTotal]:
        """Ledger rows since ``since`` summed per ``by``, costliest first."""
        column = cost_group(by)
        rows = await self._fetch(
            f"SELECT {column}, count(*), count(*) FILTER (WHERE cached), sum(input_tokens),"
            f" sum(output_tokens), sum(cost) FROM costs WHERE ts >= $1 GROUP BY {column}"
            f" ORDER BY sum(cost) DESC, {column}",
            since,
        )
        return [cost_total_from_row(r) for r in rows]

    async def purge_telemetry(
        self, max_spans: int, spans_before: float, costs_before: float
    ) -> int:
        """Keep at most ``max_spans`` spans, none from before ``spans_before`` and no ledger
        row from before ``costs_before`` (epoch seconds)."""

        async def run(conn: Any) -> int:
            deleted = 0
            for query, *args in (
                ("DELETE FROM spans WHERE id <= (SELECT max(id) FROM spans) - $1", max_spans),
                ("DELETE FROM spans WHERE start_ns < $1", int(spans_before * 1e9)),
                ("DELETE FROM costs WHERE ts < $1", costs_before),
            ):
                status = await conn.execute(query, *args)
                deleted += int(status.rsplit(" ", 1)[-1])
            return deleted

        purged: int = await self._in_transaction(run)
        return purged
