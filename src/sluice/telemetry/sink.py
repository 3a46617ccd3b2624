"""The telemetry sink: finished spans and cost-ledger rows, buffered and written in batches.

Spans end and model calls finish on the event loop; writing each one to the store there
would put a database write on every step's path. Instead they go into two bounded buffers
(an append, nothing more), and one task writes whatever is buffered every ``flush_ms`` (or
sooner when a batch fills) with a single store call, which the SQLite store runs as one
operation of its group-commit writer. When the store cannot keep up the buffers fill and
new rows are dropped and counted, never waited for: telemetry must not slow the work down.
The same task bounds the span store and the ledger (``purge_telemetry``) every minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind, StatusCode

from sluice.store.base import CostRecord, SpanRecord, TelemetryStore
from sluice.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    # Spans by their Protocol: the tracer imports this sink, not the other way round.
    from sluice.telemetry.finished_span import FinishedSpan as LocalSpan
    from sluice.telemetry.otlp import OtlpForwarder

log = logging.getLogger("sluice.telemetry")
BATCH = 2_000
PURGE_EVERY_S = 60.0


_KINDS = {kind: kind.name.lower() for kind in SpanKind}
_STATUSES = {code: code.name.lower() for code in StatusCode}


def span_record(span: LocalSpan) -> SpanRecord:
    """The stored form of a finished span."""
    ctx = span.get_span_context()
    event_id = span.attributes.get("sluice.event_id")
    parent = span.parent
    return SpanRecord(
        f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}",
        None if parent is None else f"{parent.span_id:016x}", span.name, _KINDS[span.kind],
        span.start_ns, span.end_ns, _STATUSES[span.status],
        None if event_id is None else str(event_id), span.attributes,
    )  # fmt: skip


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
        self._spans: deque[LocalSpan] = deque()
        self._costs: deque[CostRecord] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self.dropped = 0
        self.written = 0

    # producers (event loop; must stay cheap) -------------------------------------------------
    def add_span(self, span: LocalSpan) -> None:
        """Buffer a finished span (dropped and counted when the buffer is full)."""
        if len(self._spans) + len(self._costs) >= self._settings.buffer:
            self.dropped += 1
            return
        self._spans.append(span)
        if len(self._spans) == BATCH:
            self._wake.set()

    def add_cost(self, row: CostRecord) -> None:
        """Buffer a ledger row (dropped and counted when the buffer is full)."""
        if len(self._spans) + len(self._costs) >= self._settings.buffer:
            self.dropped += 1
            return
        self._costs.append(row)

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
            while self._spans or self._costs:
                spans = [self._spans.popleft() for _ in range(min(BATCH, len(self._spans)))]
                costs = [self._costs.popleft() for _ in range(min(BATCH, len(self._costs)))]
                if self._forward is not None:
                    self._forward.add(spans)
                records = [span_record(s) for s in spans] if self._settings.local_spans else []
                try:
                    await self._store.write_telemetry(records, costs)
                except Exception:  # telemetry never fails the work it describes
                    self.dropped += len(records) + len(costs)
                    log.warning("writing %d spans and %d ledger rows failed", len(records),
                                len(costs), exc_info=True)  # fmt: skip
                    continue
                written += len(records) + len(costs)
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
