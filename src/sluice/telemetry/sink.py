"""The telemetry sink: finished spans and cost-ledger rows, buffered and written in batches.

Spans end and model calls finish on the event loop; writing each one to the store there
would put a database write on every step's path. Instead they go into two bounded buffers
(an append, nothing more), and one task writes whatever is buffered every ``flush_ms`` (or
sooner when a batch fills) with a single store call, which the SQLite store runs as one
operation of its group-commit writer. When the store cannot keep up the buffers fill and
new rows are dropped and counted, never waited for: telemetry must not slow the work down.
The same task bounds the span store and the ledger (``purge_telemetry``) every minute.

What waits in the buffers is plain tuples of numbers and strings (:data:`SpanRow`), not
objects: the garbage collector stops tracking such a tuple the first time it sees it, so a
buffer of thousands of spans adds nothing to later collections, and nothing is promoted to
the old generation, whose full collections walk every loaded model (hundreds of
milliseconds each). The store receives them as :class:`LazyRecords`, which builds each
:class:`~sluice.store.base.SpanRecord` only when the store reads it: in the SQLite writer's
thread, one at a time, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from opentelemetry.trace import SpanKind, StatusCode

from sluice.store.base import CostRecord, SpanRecord, TelemetryStore
from sluice.telemetry.finished_span import SpanRow
from sluice.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    # Spans by their Protocol: the tracer imports this sink, not the other way round.
    from sluice.telemetry.finished_span import FinishedSpan
    from sluice.telemetry.otlp import OtlpForwarder

log = logging.getLogger("sluice.telemetry")
BATCH = 2_000
PURGE_EVERY_S = 60.0

#: A ledger row as it waits: the fields of :class:`~sluice.store.base.CostRecord`, in order.
CostRow = tuple[float, str | None, str | None, str, str, str, str, int, int, float, bool]

_KINDS = {kind.value: kind.name.lower() for kind in SpanKind}
_STATUSES = {code.value: code.name.lower() for code in StatusCode}
R = TypeVar("R")


def span_row(span: FinishedSpan) -> SpanRow:
    """The buffered form of a finished span (enum members as their values: an enum member
    is an object the collector tracks, and would keep the tuple tracked)."""
    return (
        span.trace_id, span.span_id, span.parent_id, span.parent_remote, span.name,
        span.kind._value_, span.start_ns, span.end_ns, span.status._value_, span.attributes,
    )  # fmt: skip


def span_record(row: SpanRow) -> SpanRecord:
    """The stored form of a buffered span."""
    attributes = row[9]
    event_id = attributes.get("sluice.event_id")
    return SpanRecord(
        f"{row[0]:032x}", f"{row[1]:016x}", f"{row[2]:016x}" if row[2] else None, row[4],
        _KINDS[row[5]], row[6], row[7], _STATUSES[row[8]],
        None if event_id is None else str(event_id), attributes,
    )  # fmt: skip


def cost_record(row: CostRow) -> CostRecord:
    """The stored form of a buffered ledger row."""
    return CostRecord(*row)


class LazyRecords(Sequence[R], Generic[R]):
    """Buffered rows seen as records: each record is built when it is read, and dropped as
    soon as the reader moves on (see the module docstring)."""

    __slots__ = ("_make", "_rows")

    def __init__(self, rows: Sequence[Any], make: Callable[[Any], R]) -> None:
        self._rows = rows
        self._make = make

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> LazyRecords[R]: ...

    def __getitem__(self, index: int | slice) -> R | LazyRecords[R]:
        if isinstance(index, slice):
            return LazyRecords(self._rows[index], self._make)
        return self._make(self._rows[index])

    def __iter__(self) -> Iterator[R]:
        return map(self._make, self._rows)

    @property
    def rows(self) -> Sequence[Any]:
        """The buffered rows themselves."""
        return self._rows


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
        self._spans: list[SpanRow] = []
        self._costs: list[CostRow] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self.dropped = 0
        self.written = 0

    # producers (event loop; must stay cheap) -------------------------------------------------
    def add_span(self, span: FinishedSpan) -> None:
        """Buffer a finished span (dropped and counted when the buffer is full)."""
        spans = self._spans
        if len(spans) + len(self._costs) >= self._limit:
            self.dropped += 1
            return
        spans.append(span_row(span))
        if len(spans) == BATCH:
            self._wake.set()

    def add_cost(self, row: CostRecord) -> None:
        """Buffer a ledger row (dropped and counted when the buffer is full)."""
        if len(self._spans) + len(self._costs) >= self._limit:
            self.dropped += 1
            return
        self._costs.append((
            row.ts, row.event_id, row.trace_id, row.tenant, row.workflow, row.step, row.model,
            row.input_tokens, row.output_tokens, row.cost, row.cached,
        ))  # fmt: skip

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

    def _take_spans(self) -> list[SpanRow]:
        spans = self._spans
        if len(spans) <= BATCH:
            self._spans = []
            return spans
        taken = spans[:BATCH]
        del spans[:BATCH]
        return taken

    def _take_costs(self) -> list[CostRow]:
        costs = self._costs
        if len(costs) <= BATCH:
            self._costs = []
            return costs
        taken = costs[:BATCH]
        del costs[:BATCH]
        return taken

    async def flush(self) -> int:
        """Write everything buffered now; return how many rows were written."""
        written = 0
        async with self._lock:
            while self._spans or self._costs:
                spans, costs = self._take_spans(), self._take_costs()
                if self._forward is not None:
                    self._forward.add(spans)
                kept = spans if self._settings.local_spans else []
                try:
                    await self._store.write_telemetry(
                        LazyRecords(kept, span_record), LazyRecords(costs, cost_record)
                    )
                except Exception:  # telemetry never fails the work it describes
                    self.dropped += len(kept) + len(costs)
                    log.warning("writing %d spans and %d ledger rows failed", len(kept),
                                len(costs), exc_info=True)  # fmt: skip
                    continue
                written += len(kept) + len(costs)
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
