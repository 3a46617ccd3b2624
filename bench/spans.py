"""What one span costs: Sluice's LocalSpan beside the OpenTelemetry SDK's span, in one run.

Each round starts and ends ``--spans`` spans, each with the seven attributes of a step span,
as the current span (context attached and detached), and hands each finished span to a
buffer: the SDK through a span processor appending to a list (what a batch processor does on
the caller's thread), Sluice through its telemetry sink. Rounds alternate between the two;
the medians and their ratio are printed.

Then the span store's write: ``--traces`` traces of ten spans each written to a fresh SQLite
store in batches of 2,000 (as the sink writes them), once with random trace ids and once with
the time-ordered ids Sluice makes (time in the top bits), alternating; CPU time a span is
compared. The last line is one JSON object.

    .venv/bin/python bench/spans.py [--spans 20000] [--rounds 5] [--traces 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from sluice.store.base import CostRecord, SpanRecord
from sluice.store.sqlite import SqliteStore
from sluice.telemetry.settings import TelemetrySettings
from sluice.telemetry.tracing import Telemetry

ATTRIBUTES = {"sluice.event_id": "01a21afc431b7594fd30a781fd4242ae", "sluice.workflow": "triage",
              "sluice.step": "classify", "sluice.step.index": 1, "sluice.pool": "inference",
              "sluice.attempt": 1, "sluice.tenant": "bank"}  # fmt: skip


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


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traces", type=int, default=20_000)
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
    figures: dict[str, Any] = {"spans": args.spans, "rounds": args.rounds,
                               "sdk_us": round(sdk, 2), "local_us": round(local, 2),
                               "ratio": round(sdk / local, 2),
                               "write_random_us": round(rand, 2),
                               "write_ordered_us": round(timed, 2),
                               "write_ratio": round(timed / rand, 3)}  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
