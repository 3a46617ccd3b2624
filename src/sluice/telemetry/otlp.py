"""OTLP/HTTP export: finished spans sent to a collector in batches, from a worker thread.

Spans reach the forwarder from the sink's flush (already batched). A task hands each batch
to the OpenTelemetry SDK's OTLP/HTTP exporter in a worker thread, so protobuf encoding and
the HTTP round trip never run on the event loop, and a slow or absent collector delays only
this task: its queue is bounded, and past the bound spans are dropped and counted rather
than held in memory or waited for.
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
from opentelemetry.trace import Status

if TYPE_CHECKING:
    from sluice.telemetry.finished_span import FinishedSpan

log = logging.getLogger("sluice.telemetry")
BATCH = 512


class OtlpForwarder:
    """A bounded queue of spans and the task that exports them (see the module docstring)."""

    def __init__(
        self, endpoint: str, service_name: str, max_queue: int = 20_000, timeout_s: float = 5.0
    ) -> None:
        self.endpoint = f"{endpoint}/v1/traces"
        self._exporter = OTLPSpanExporter(endpoint=self.endpoint, timeout=timeout_s)
        self._resource = Resource.create({"service.name": service_name})
        self._scope = InstrumentationScope("sluice")
        self._queue: deque[FinishedSpan] = deque()
        self._max_queue = max_queue
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.exported = 0
        self.dropped = 0

    def add(self, spans: Sequence[FinishedSpan]) -> None:
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

    def _export(self, batch: Sequence[FinishedSpan]) -> bool:
        spans = [
            ReadableSpan(
                name=s.name, context=s.get_span_context(), parent=s.parent,
                resource=self._resource, attributes=s.attributes, kind=s.kind,
                status=Status(s.status), start_time=s.start_ns, end_time=s.end_ns,
                instrumentation_scope=self._scope,
            )
            for s in batch
        ]  # fmt: skip
        try:
            return self._exporter.export(spans) is SpanExportResult.SUCCESS
        except Exception:  # the collector's trouble never reaches the work
            log.warning("exporting %d spans to %s failed", len(spans), self.endpoint,
                        exc_info=True)  # fmt: skip
            return False
