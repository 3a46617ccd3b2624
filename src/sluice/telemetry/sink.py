"""The telemetry sink: finished spans and cost-ledger rows, buffered and written in batches.

Spans end and model calls finish on the event loop; writing each one to the store there
would put a database write on every step's path. Instead they go into two bounded buffers
(an append, nothing more), and one task writes whatever is buffered every ``flush_ms`` (or
sooner when a batch fills) with a single store call, which the SQLite store runs as one
operation of its group-commit writer. When the store cannot keep up the buffers fill and
new rows are dropped and counted, never waited for: telemetry must not slow the work down.
The same task bounds the span store and the ledger (``purge_telemetry``) every minute.

What waits in the buffers is plain values, one list per field (a column): appending an
integer or a string to a list makes no object the garbage collector counts, where a span
object (or a tuple) per buffered span made the collector run more than twice as often with
tracing on, and promoted spans to the old generation, whose full collections walk every
loaded model (hundreds of milliseconds each). The store receives the columns as
:class:`LazyRecords`, which builds each :class:`~sluice.store.base.SpanRecord` only when the
store reads it: in the SQLite writer's thread, one at a time, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from opentelemetry.trace import SpanKind, StatusCode

from sluice.store.base import CostRecord, SpanRecord, TelemetryStore
from sluice.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    # Spans by their Protocol: the tracer imports this sink, not the other way round.
    from sluice.telemetry.finished_span import FinishedSpan
    from sluice.telemetry.otlp import OtlpForwarder

log = logging.getLogger("sluice.telemetry")
BATCH = 2_000
PURGE_EVERY_S = 60.0

SPAN_FIELDS = 10  # the fields of a SpanRow, each buffered in its own column
COST_FIELDS = len(dataclasses.fields(CostRecord))  # buffered in CostRecord's field order

_KINDS = {kind.value: kind.name.lower() for kind in SpanKind}
_STATUSES = {code.value: code.name.lower() for code in StatusCode}
R = TypeVar("R")
Columns = list[list[Any]]


def span_record(
    trace_id: int, span_id: int, parent_id: int, remote: bool, name: str, kind: int,
    start_ns: int, end_ns: int, status: int, attributes: dict[str, Any],
) -> SpanRecord:  # fmt: skip
    """The stored form of a buffered span (the fields of a :data:`SpanRow`)."""
    event_id = attributes.get("sluice.event_id")
    return SpanRecord(
        f"{trace_id:032x}", f"{span_id:016x}", f"{parent_id:016x}" if parent_id else None, name,
        _KINDS[kind], start_ns, end_ns, _STATUSES[status],
        None if event_id is None else str(event_id), attributes,
    )  # fmt: skip


class LazyRecords(Sequence[R], Generic[R]):
    """Buffered columns seen as records: each record is built when it is read, and dropped
    as soon as the reader moves on (see the module docstring)."""

    __slots__ = ("_columns", "_make")

    def __init__(self, columns: Columns, make: Callable[..., R]) -> None:
        self._columns = columns
        self._make = make

    def __len__(self) -> int:
        return len(self._columns[0]) if self._columns else 0

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> LazyRecords[R]: ...

    def __getitem__(self, index: int | slice) -> R | LazyRecords[R]:
        if isinstance(index, slice):
            return LazyRecords([column[index] for column in self._columns], self._make)
        return self._make(*(column[index] for column in self._columns))

    def __iter__(self) -> Iterator[R]:
        return map(self._make, *self._columns)


def _take(columns: Columns, width: int) -> tuple[Columns, Columns]:
    """(up to ``BATCH`` rows to write, the columns that stay buffered)."""
    if len(columns[0]) <= BATCH:
        return columns, [[] for _ in range(width)]
    return [c[:BATCH] for c in columns], [c[BATCH:] for c in columns]


class TelemetrySink:
    """Bounded buffers of spans and ledger rows, and the task that writes them."""

    def __init__(
        self,
        store: TelemetryStore,
        settings: TelemetrySettings,
        forward: OtlpForwarder | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._forward = forward
        self._limit = settings.buffer
        self._spans: Columns = [[] for _ in range(SPAN_FIELDS)]
        self._costs: Columns = [[] for _ in range(COST_FIELDS)]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self.dropped = 0
        self.written = 0

    # producers (the event loop's thread, where spans end; must stay cheap) ---------------------
    def add_span(self, span: FinishedSpan) -> None:
        """Buffer a finished span (dropped and counted when the buffer is full)."""
        c = self._spans
        waiting = len(c[0])
        if waiting + len(self._costs[0]) >= self._limit:
            self.dropped += 1
            return
        # Enum members go in as their values: an enum member is an object.
        c[0].append(span.trace_id)
        c[1].append(span.span_id)
        c[2].append(span.parent_id)
        c[3].append(span.parent_remote)
        c[4].append(span.name)
        c[5].append(span.kind._value_)
        c[6].append(span.start_ns)
        c[7].append(span.end_ns)
        c[8].append(span.status._value_)
        c[9].append(span.attributes)
        if waiting + 1 == BATCH:
            self._wake.set()

    def add_cost(self, row: CostRecord) -> None:
        """Buffer a ledger row (dropped and counted when the buffer is full)."""
        c = self._costs
        if len(self._spans[0]) + len(c[0]) >= self._limit:
            self.dropped += 1
            return
        for column, value in zip(c, (
            row.ts, row.event_id, row.trace_id, row.tenant, row.workflow, row.step, row.model,
            row.input_tokens, row.output_tokens, row.cost, row.cached, row.template,
        ), strict=True):  # fmt: skip
            column.append(value)

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer task on the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="telemetry-sink")
        if self._forward is not None:
            self._forward.start()

    async def stop(self) -> None:
        """Stop the task, then write what is still buffered (and send it to the collector).

        The task is asked to stop, not cancelled: a cancelled flush would lose the batch it
        holds.
        """
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
            self._stopping = False
        await self.flush()
        if self._forward is not None:
            await self._forward.drain()

    async def flush(self) -> int:
        """Write everything buffered now; return how many rows were written."""
        written = 0
        async with self._lock:
            while self._spans[0] or self._costs[0]:
                spans, self._spans = _take(self._spans, SPAN_FIELDS)
                costs, self._costs = _take(self._costs, COST_FIELDS)
                if self._forward is not None and spans[0]:
                    self._forward.add(list(zip(*spans, strict=True)))
                kept = spans if self._settings.local_spans else []
                records = LazyRecords(kept, span_record)
                ledger = LazyRecords(costs, CostRecord)
                try:
                    await self._store.write_telemetry(records, ledger)
                except Exception:  # telemetry never fails the work it describes
                    self.dropped += len(records) + len(ledger)
                    log.warning("writing %d spans and %d ledger rows failed", len(records),
                                len(ledger), exc_info=True)  # fmt: skip
                    continue
                written += len(records) + len(ledger)
        self.written += written
        return written

    async def purge(self) -> int:
        """Apply the span store's and the ledger's bounds now."""
        now = time.time()
        return await self._store.purge_telemetry(
            self._settings.max_spans, now - self._settings.span_ttl_s,
            now - self._settings.cost_ttl_s,
        )  # fmt: skip

    async def _run(self) -> None:
        every = self._settings.flush_ms / 1000
        next_purge = time.monotonic()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), every)
            self._wake.clear()
            await self.flush()
            if time.monotonic() >= next_purge and not self._stopping:
                next_purge = time.monotonic() + PURGE_EVERY_S
                try:
                    await self.purge()
                except Exception:  # a bad moment must not end the loop
                    log.warning("purging old spans and ledger rows failed", exc_info=True)
