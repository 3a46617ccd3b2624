"""What one span costs: Sluice's LocalSpan beside the OpenTelemetry SDK's span, in one run.

Each round starts and ends ``--spans`` spans, each with the seven attributes of a step span,
as the current span (context attached and detached), and hands each finished span to a
buffer: the SDK through a span processor appending to a list (what a batch processor does on
the caller's thread), Sluice through its telemetry sink. Rounds alternate between the two;
the medians and their ratio are printed, then one JSON object.

    .venv/bin/python bench/spans.py [--spans 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from sluice.store.base import CostRecord, SpanRecord
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
    telemetry = Telemetry(TelemetrySettings(buffer=n + 1), _NoStore())  # type: ignore[arg-type]
    tracer = telemetry.tracer
    started = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("step classify", attributes=ATTRIBUTES):
            pass
    return (time.perf_counter() - started) / n


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
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
    figures: dict[str, Any] = {"spans": args.spans, "rounds": args.rounds,
                               "sdk_us": round(sdk, 2), "local_us": round(local, 2),
                               "ratio": round(sdk / local, 2)}  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
