"""Telemetry bookkeeping: what the classify step's metrics and spike detector cost per request.

Measures, per classify request of two model calls, the bookkeeping the step does now (calls,
cost, input and output tokens labelled by tenant, workflow, version, step, model and flag;
escalations; one ``Alerts.record``) against the baseline measured in the same run: the
bookkeeping before tokens, flags and alerts (calls and cost by tenant, workflow, step, model).
Also times one ``/metrics`` render and one ``sluice top`` frame (parse two scrapes, render)
over the series that run leaves behind.

    .venv/bin/python bench/telemetry.py [--requests 20000] [--repeat 5]

Medians over the repeats; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import orjson
from prometheus_client import CollectorRegistry, Counter

from sluice.cli.top import parse_scrape, render
from sluice.models.base import ModelResult, Usage
from sluice.telemetry.alerts import Alerts, AlertSettings
from sluice.telemetry.metrics import Metrics

TENANTS = [f"t{i}" for i in range(50)]
CALLS = (
    ModelResult("small", {}, "card_arrival", 0.4, usage=Usage(180, 12), cost=0.00003),
    ModelResult("large", {}, "card_arrival", 0.9, usage=Usage(180, 12), cost=0.0004),
)


def baseline(requests: int) -> Callable[[], None]:
    """The step's bookkeeping before tokens, flags and alerts."""
    registry = CollectorRegistry()
    labels = ["tenant", "workflow", "step", "model"]
    calls = Counter("calls", "", labels, registry=registry)
    cost = Counter("cost", "", labels, registry=registry)
    escalations = Counter("esc", "", ["tenant", "workflow"], registry=registry)
    tenants: set[str] = set()

    def run() -> None:
        for i in range(requests):
            tenant = TENANTS[i % len(TENANTS)]
            if tenant not in tenants:
                tenants.add(tenant)
            for call in CALLS:
                key = (tenant, "triage", "classify", call.model)
                calls.labels(*key).inc()
                cost.labels(*key).inc(call.cost)
            escalations.labels(tenant, "triage").inc()

    return run


def current(requests: int, metrics: Metrics, alerts: Alerts) -> Callable[[], None]:
    """The step's bookkeeping now (the same calls as in ``sluice.steps.classify``)."""
    event_flag = "beta"  # the event's flag, as the step context carries it

    def run() -> None:
        for i in range(requests):
            tenant, flag = metrics.tenant(TENANTS[i % len(TENANTS)]), metrics.flag(event_flag)
            for call in CALLS:
                series = metrics.model_series(tenant, "triage", "3", "classify", call.model, flag)
                series.count(call.cost, call.usage.input_tokens, call.usage.output_tokens)
            metrics.escalations.labels(tenant, "triage", "3", flag).inc()
            alerts.record("triage", CALLS)

    return run


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    metrics = Metrics()
    metrics.configure({"flags": ["beta"]})
    alerts = Alerts(AlertSettings(), metrics=metrics)
    base = statistics.median(timed(baseline(args.requests), args.repeat))
    now = statistics.median(timed(current(args.requests, metrics, alerts), args.repeat))
    scrape = metrics.render()
    render_s = statistics.median(timed(metrics.render, args.repeat))
    text = scrape.decode()

    def frame() -> str:
        return render(parse_scrape(text, 1.0), parse_scrape(text, 0.0), "http://bench")

    frame_s = statistics.median(timed(frame, args.repeat))
    per = 1e6 / args.requests
    figures = {
        "requests": args.requests,
        "baseline_us_per_request": round(base * per, 2),
        "current_us_per_request": round(now * per, 2),
        "ratio": round(now / base, 2),
        "series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "render_ms": round(render_s * 1000, 2),
        "top_frame_ms": round(frame_s * 1000, 2),
    }
    print(f"bookkeeping per classify request (2 calls), median of {args.repeat}:")
    print(f"  baseline (calls, cost)                     {figures['baseline_us_per_request']} us")
    print(f"  current (+ tokens, version, flag, alerts)  {figures['current_us_per_request']} us"
          f"  ({figures['ratio']}x)")  # fmt: skip
    print(f"/metrics render over {figures['series']} series   {figures['render_ms']} ms")
    print(f"sluice top frame (parse 2 scrapes, render)   {figures['top_frame_ms']} ms")
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
