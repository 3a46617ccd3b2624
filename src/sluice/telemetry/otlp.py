"""OTLP/HTTP export: finished spans sent to a collector in batches, from a worker thread.

Spans reach the forwarder from the sink's flush (already batched, as the sink's plain rows).
A task hands each batch to the OpenTelemetry SDK's OTLP/HTTP exporter in a worker thread, so
building the SDK's spans, protobuf encoding and the HTTP round trip never run on the event
loop, and a slow or absent collector delays only this task: its queue is bounded, and past
the bound spans are dropped and counted rather than held in memory or waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

if TYPE_CHECKING:
    from sluice.telemetry.finished_span import SpanRow

log = logging.getLogger("sluice.telemetry")
BATCH = 512
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class OtlpForwarder:
    """A bounded queue of spans and the task that exports them (see the module docstring)."""

    def __init__(
        self, endpoint: str, service_name: str, max_queue: int = 20_000, timeout_s: float = 5.0
    ) -> None:
        self.endpoint = f"{endpoint}/v1/traces"
        self._exporter = OTLPSpanExporter(endpoint=self.endpoint, timeout=timeout_s)
        self._resource = Resource.create({"service.name": service_name})
        self._scope = InstrumentationScope("sluice")
        self._queue: deque[SpanRow] = deque()
        self._max_queue = max_queue
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.exported = 0
        self.dropped = 0

    def add(self, spans: Sequence[SpanRow]) -> None:
        """Queue spans for export (past the bound they are dropped and counted)."""
        room = max(0, self._max_queue - len(self._queue))
        self._queue.extend(spans[:room])
        self.dropped += max(0, len(spans) - room)
        if self._queue:
            self._wake.set()

    def start(self) -> None:
        """Start the export task on the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="telemetry-otlp")

    async def drain(self) -> None:
        """Stop the task, export what is queued, and close the exporter."""
        if self._task is not None:
            # Asked, not cancelled: a cancelled export would drop the batch it holds.
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        await self._export_queued()
        await asyncio.to_thread(self._exporter.shutdown)

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self._export_queued()

    async def _export_queued(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            if await asyncio.to_thread(self._export, batch):
                self.exported += len(batch)
            else:
                self.dropped += len(batch)
                log.warning("the OTLP collector at %s refused %d spans", self.endpoint, len(batch))

    def _export(self, batch: Sequence[SpanRow]) -> bool:
        spans = [self._readable(row) for row in batch]
        try:
            return self._exporter.export(spans) is SpanExportResult.SUCCESS
        except Exception:  # the collector's trouble never reaches the work
            log.warning("exporting %d spans to %s failed", len(spans), self.endpoint,
                        exc_info=True)  # fmt: skip
            return False

    def _readable(self, row: SpanRow) -> ReadableSpan:
        """The SDK's span for a buffered one (built here, in the exporter's thread)."""
        trace_id, span_id, parent_id, remote, name, kind, start, end, status, attributes = row
        parent = SpanContext(trace_id, parent_id, remote, _SAMPLED) if parent_id else None
        return ReadableSpan(
            name=name, context=SpanContext(trace_id, span_id, False, _SAMPLED), parent=parent,
            resource=self._resource, attributes=attributes, kind=SpanKind(kind),
            status=Status(StatusCode(status)), start_time=start, end_time=end,
            instrumentation_scope=self._scope,
        )  # fmt: skip
