"""What one span costs: Sluice's LocalSpan beside the OpenTelemetry SDK's span, in one run.

Each round starts and ends ``--spans`` spans, each with the seven attributes of a step span,
as the current span (context attached and detached), and hands each finished span to a
buffer: the SDK through a span processor appending to a list (what a batch processor does on
the caller's thread), Sluice through its telemetry sink. Rounds alternate between the two;
the medians and their ratio are printed.

Then the span store's write: ``--traces`` traces of ten spans each written to a fresh SQLite
store in batches of 2,000 (as the sink writes them), once with random trace ids and once with
the time-ordered ids Sluice makes (time in the top bits), alternating; CPU time a span is
compared.

Last, the telemetry of one triage ticket without the ticket: the accept span, five step
spans continuing the stored traceparent, a retrieval-cache lookup, a model call with its
response-cache lookup, and a ledger row (the calls the gateway, the executor, the caches
and the classify step make), ``--tickets`` of them, then flushed into a fresh SQLite store.
Printed: CPU microseconds a ticket on the event loop and for the flush (every thread), and
the garbage collector's allocation count a ticket (what triggers its collections: objects
it counts that are still alive), beside the same calls with tracing off. The last line is
one JSON object.

    .venv/bin/python bench/spans.py [--spans 20000] [--rounds 5] [--traces 20000]
                                    [--tickets 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from sluice.store.base import CostRecord, Job, SpanRecord
from sluice.store.sqlite import SqliteStore
from sluice.telemetry.call_spans import cache_span, model_span, record_hit, record_model_result
from sluice.telemetry.settings import TelemetrySettings
from sluice.telemetry.tracing import Telemetry, current_traceparent

ATTRIBUTES: dict[str, str | int] = {
    "sluice.event_id": "01a21afc431b7594fd30a781fd4242ae", "sluice.workflow": "triage",
    "sluice.step": "classify", "sluice.step.index": 1, "sluice.pool": "inference",
    "sluice.attempt": 1, "sluice.tenant": "bank",
}  # fmt: skip


class _Buffer(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class _NoStore:
    """The sink's store, never reached: the benchmark measures spans, not writes."""

    async def write_telemetry(self, spans: list[SpanRecord], costs: list[CostRecord]) -> None:
        return None


def _sdk(n: int) -> float:
    provider = TracerProvider()
    provider.add_span_processor(_Buffer())
    tracer = provider.get_tracer("bench")
    started = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("step classify", attributes=ATTRIBUTES):
            pass
    return (time.perf_counter() - started) / n


def _local(n: int) -> float:
    telemetry = Telemetry(TelemetrySettings(buffer=n + 1), _NoStore())  # type: ignore[arg-type]  # only the write is reached
    tracer = telemetry.tracer
    started = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("step classify", attributes=ATTRIBUTES):
            pass
    return (time.perf_counter() - started) / n


async def _writes(traces: int, ordered: bool) -> float:
    """CPU microseconds a span to write ``traces`` traces of ten spans to a new store."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "spans.db")
        await store.open()
        started = time.process_time()
        batch: list[SpanRecord] = []
        for n in range(traces):
            if ordered:
                trace_id = f"{(time.time_ns() // 1_000_000 << 80) | random.getrandbits(80):032x}"
            else:
                trace_id = f"{random.getrandbits(128):032x}"
            for _ in range(10):
                span_id = f"{random.getrandbits(64):016x}"
                batch.append(SpanRecord(trace_id, span_id, None, "step classify", "internal",
                                        n, n + 1, "ok", f"{n:032d}", ATTRIBUTES))  # fmt: skip
            if len(batch) >= 2_000:
                await store.write_telemetry(batch, [])
                batch = []
        await store.write_telemetry(batch, [])
        spent = time.process_time() - started
        await store.aclose()
    return spent / (traces * 10) * 1e6


class _Model:
    name = "small"


class _Usage:
    input_tokens = 0
    output_tokens = 0


class _Result:
    """What the classify step's model call returns, as telemetry reads it."""

    model = "small"
    usage = _Usage()
    cost = 0.000002
    cached = False


STEPS = ("retrieve", "classify", "route", "draft", "deliver")


def _ticket(telemetry: Telemetry, n: int) -> None:
    """The telemetry calls of one triage ticket, in the order the app makes them."""
    event_id = f"{n:032x}"
    with telemetry.span(
        "accept triage", {"sluice.workflow": "triage", "sluice.tenant": "t"}
    ) as span:
        trace = current_traceparent()
        if span is not None:
            span.set_attributes({"sluice.event_id": event_id, "sluice.duplicate": False})
    for index, step in enumerate(STEPS):
        job = Job(n, event_id, index, "post", "triage", "v1", "t", 1, b"", 0.0, 0.0, "me", trace)
        with telemetry.step_span(job, step):
            if step == "retrieve":
                with cache_span("retrieval") as lookup:
                    record_hit(lookup, False)
            elif step == "classify":
                with model_span(_Model()) as call:
                    with cache_span("response") as lookup:
                        record_hit(lookup, False)
                    record_model_result(call, _Result())
                telemetry.record_costs(event_id, "t", "triage", step, [_Result()])


async def _tickets(count: int, tracing: bool) -> tuple[float, float, float]:
    """(loop CPU us, flush CPU us, collector allocation count) a ticket."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "spans.db")
        await store.open()
        settings = TelemetrySettings(tracing=tracing, ledger=tracing, buffer=count * 20)
        telemetry = Telemetry(settings, store)
        gc.collect()
        gc.disable()  # the count below is what would trigger collections
        try:
            counted = gc.get_count()[0]
            started = time.process_time()
            for n in range(count):
                _ticket(telemetry, n)
            loop = time.process_time() - started
            counted = gc.get_count()[0] - counted
        finally:
            gc.enable()
        gc.collect()  # what the disabled collector owes, paid outside the flush's time
        started = time.process_time()
        await telemetry.flush()
        flush = time.process_time() - started
        await store.aclose()
    return loop / count * 1e6, flush / count * 1e6, counted / count


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--tickets", type=int, default=2_000)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"sdk": [], "local": []}
    measure: dict[str, Callable[[int], float]] = {"sdk": _sdk, "local": _local}
    for _ in range(args.rounds):
        for name, fn in measure.items():
            runs[name].append(fn(args.spans) * 1e6)
    sdk, local = statistics.median(runs["sdk"]), statistics.median(runs["local"])
    print(f"span cost: {args.spans} spans x {args.rounds} rounds each way")
    print(f"  OpenTelemetry SDK span : median {sdk:.1f} us a span")
    print(f"  Sluice LocalSpan       : median {local:.1f} us a span")
    print(f"  ratio                  : the SDK span costs {sdk / local:.1f}x")
    writes: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(max(1, args.rounds // 2)):
        for ordered in (False, True):
            writes[ordered].append(asyncio.run(_writes(args.traces, ordered)))
    rand, timed = statistics.median(writes[False]), statistics.median(writes[True])
    print(f"span store writes: {args.traces} traces of 10 spans, batches of 2,000")
    print(f"  random trace ids       : median {rand:.1f} CPU us a span")
    print(f"  time-ordered trace ids : median {timed:.1f} CPU us a span")
    print(f"  ratio                  : {timed / rand:.2f}")
    ticket: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for tracing in (False, True):
            ticket[tracing].append(asyncio.run(_tickets(args.tickets, tracing)))
    on = [statistics.median(run[i] for run in ticket[True]) for i in range(3)]
    off = [statistics.median(run[i] for run in ticket[False]) for i in range(3)]
    print(f"a ticket's telemetry: {args.tickets} tickets x {args.rounds} rounds each way")
    print(f"  tracing on  : {on[0]:.1f} CPU us on the loop, {on[1]:.1f} to flush,"
          f" {on[2]:.1f} counted allocations a ticket")  # fmt: skip
    print(f"  tracing off : {off[0]:.1f} CPU us on the loop, {off[1]:.1f} to flush,"
          f" {off[2]:.1f} counted allocations a ticket")  # fmt: skip
    figures: dict[str, Any] = {"spans": args.spans, "rounds": args.rounds,
                               "sdk_us": round(sdk, 2), "local_us": round(local, 2),
                               "ratio": round(sdk / local, 2),
                               "write_random_us": round(rand, 2),
                               "write_ordered_us": round(timed, 2),
                               "write_ratio": round(timed / rand, 3),
                               "ticket_loop_us": round(on[0], 1),
                               "ticket_flush_us": round(on[1], 1),
                               "ticket_gc_count": round(on[2], 1),
                               "ticket_off_loop_us": round(off[0], 1)}  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
