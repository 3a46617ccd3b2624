"""The triage workflow end to end on the embedded store: a busy day's 50,000 tickets.

Tickets come from the held-out splits (validation and replay), cycled to the count asked, and
varied as real traffic is: 30% arrive again word for word (a customer writing twice), the rest
carry a greeting, a reference number or a sign-off, so exact-match caches do not answer them.
Every ticket takes the whole way: the ingress gateway (schema, PII masking), then retrieve,
classify (the cascade), route, draft and deliver, each step a durable job on SQLite
(synchronous=FULL). The same run then sends a sample through the workflow with the cascade
off (every ticket to the large model) for the baseline. The last line is one JSON object.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/triage.py [--tickets 50000] [--baseline 3000]

``--telemetry both`` measures what telemetry costs instead: the same tickets with telemetry
off (no spans, no cost ledger) and on (a span for acceptance, each step, each model call and
cache lookup, written to the local span store, plus the ledger), alternating off/on and
on/off ``--repeats`` times in one run, and prints the median tickets/s of each and their ratio,
and beside it the CPU time the process spent a ticket (less sensitive than wall time to
other work on a shared machine). Each round's two runs sit side by side in time, so the
round's on/off ratio is the least disturbed by load that comes and goes: the last line's
``telemetry_ratio`` is the median of the rounds' ratios, ``telemetry_ratio_spread`` their
lowest and highest. ``--gc-freeze`` runs both ways with the started app frozen out of the
garbage collector's sight (see :func:`run`).
``--telemetry on|off`` runs the full benchmark with telemetry set that way.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/triage.py --telemetry both [--tickets 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.errors import AdmissionError
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.models.metrics import accuracy
from sluice.store.base import EventState
from sluice.workflow import WorkflowRegistry

APP = Path(__file__).resolve().parents[1] / "examples" / "triage"
GREETINGS = ["Hi,", "Hello there.", "Good morning!", "Hey support,", "Dear team,"]
SIGN_OFFS = ["Thanks.", "Cheers", "Kind regards, Sam", "Please help asap", "thx"]


def tickets(n: int, seed: int = 11) -> list[tuple[str, str]]:
    """``n`` (text, category) pairs from the held-out splits, with repeats and variations."""
    rows: list[tuple[str, str]] = []
    for name in ("validation.csv", "replay.csv"):
        with (APP / "data" / name).open(newline="") as fh:
            rows += [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for i in range(n):
        if out and rng.random() < 0.3:
            out.append(rng.choice(out))
            continue
        text, label = rows[i % len(rows)]
        ref = f"(ref {rng.randrange(10**6):06d})"
        variant = f"{rng.choice(GREETINGS)} {text} {ref} {rng.choice(SIGN_OFFS)}"
        out.append((variant, label))
    return out


def _without_cascade(registry: WorkflowRegistry) -> WorkflowRegistry:
    """The same workflows with every classify step asking only its last (largest) model."""
    changed = []
    for wf in registry:
        steps = tuple(
            dataclasses.replace(s, options={**s.options, "cascade": [s.options["cascade"][-1]]})
            if s.uses == "classify" else s
            for s in wf.steps
        )  # fmt: skip
        changed.append(dataclasses.replace(wf, steps=steps))
    return WorkflowRegistry(changed)


async def run(
    stream: list[tuple[str, str]], cascade: bool, label: str, telemetry: bool = True,
    freeze: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Push ``stream`` through the triage app in this process; return the figures.

    ``freeze`` moves what the started app holds (the loaded models above all) out of the
    garbage collector's sight (``gc.freeze``) before the first ticket, as the AI gateway does
    at its start: a full collection then no longer walks the models.
    """
    settings = load_settings(APP)
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(settings, store=f"sqlite:///{Path(tmp) / 'bench.db'}")
        section = {} if telemetry else {"tracing": False, "ledger": False}
        settings = dataclasses.replace(settings, extra={**settings.extra, "telemetry": section})
        registry = WorkflowRegistry.from_directory(settings.workflows_dir or APP, settings.pools)
        if not cascade:
            registry = _without_cascade(registry)
        app = SluiceApp.from_settings(settings, registry=registry)
        async with app:
            if freeze:
                gc.freeze()
            gateway = Ingress(app, parse_ingress(settings))
            ids: list[str] = []
            position: dict[str, int] = {}  # event id -> index in the stream
            todo = iter(enumerate(stream))
            started = time.perf_counter()
            cpu_started = time.process_time()  # every thread of this process

            async def submitter() -> None:
                for index, (text, _) in todo:
                    body = orjson.dumps({"text": text})
                    while True:
                        try:
                            receipt = await gateway.api_run(
                                "bench", "triage", body, {"text": text}, None
                            )
                            break
                        except AdmissionError:
                            await asyncio.sleep(0.05)  # backpressure: the first pool is full
                    ids.append(receipt.event_id)
                    position[receipt.event_id] = index
                    if len(ids) % 5000 == 0:
                        rate = len(ids) / (time.perf_counter() - started)
                        print(f"  {label}: accepted {len(ids)}/{len(stream)} ({rate:.0f}/s)",
                              file=sys.stderr)  # fmt: skip

            await asyncio.gather(*(submitter() for _ in range(32)))
            # Done when no event is still open.
            while await app.store.list_events(EventState.ACCEPTED, limit=1):  # noqa: ASYNC110 - polls the store
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            predicted: list[str | None] = [None] * len(ids)
            escalated = dead = 0
            for event in await app.store.list_events(limit=len(ids) + 10):
                if event.state is EventState.DEAD:
                    dead += 1
                    continue
                result = orjson.loads(event.result or b"{}")
                predicted[position[event.id]] = result.get("intent")
                escalated += bool(result.get("escalated"))
    if freeze:
        gc.unfreeze()  # the next run's app is a new one
    gold = [label for _, label in stream]
    spans = app.telemetry.sink.written  # the app flushed what was buffered when it stopped
    return {
        "spans_and_rows": spans,
        "cpu_ms_per_ticket": cpu * 1000 / len(stream),
        "tickets": len(stream),
        "seconds": elapsed,
        "tickets_per_s": len(stream) / elapsed,
        "accuracy": accuracy(predicted, gold),
        "escalation_rate": escalated / len(stream),
        "dead": dead,
    }


def telemetry_cost(count: int, repeats: int, freeze: bool = False) -> None:
    """Telemetry off and on, alternating, on the same tickets; medians and their ratio."""
    print(f"triage telemetry cost: {count} tickets x {repeats} runs each way,"
          f" {os.cpu_count()} cores{', gc.freeze() after start' if freeze else ''}")  # fmt: skip
    stream = tickets(count)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    written = 0
    for n in range(repeats):
        # Alternate which goes first, so an order effect (a warmer second run) cancels out.
        for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
            label = f"telemetry {mode}"
            figures = asyncio.run(
                run(stream, cascade=True, label=label, telemetry=mode == "on", freeze=freeze)
            )
            rates[mode].append(figures["tickets_per_s"])
            cpu[mode].append(figures["cpu_ms_per_ticket"])
            if mode == "on":
                written = figures["spans_and_rows"]
            print(f"  run {n + 1} telemetry {mode:<3}: {figures['tickets_per_s']:.0f} tickets/s,"
                  f" {figures['cpu_ms_per_ticket']:.2f} CPU ms a ticket"
                  f" (dead {figures['dead']})")  # fmt: skip
    # Round n's two runs were measured one after the other: their ratio is the paired figure.
    paired = [r_on / r_off for r_on, r_off in zip(rates["on"], rates["off"], strict=True)]
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    print(f"  telemetry off: median {off:.0f} tickets/s, {cpu_off:.2f} CPU ms a ticket")
    print(f"  telemetry on : median {on:.0f} tickets/s, {cpu_on:.2f} CPU ms a ticket"
          f" ({written} spans and ledger rows stored in the last run,"
          f" {written / count:.1f} per ticket)")  # fmt: skip
    print(f"  ratio        : throughput {on / off:.3f} (telemetry costs"
          f" {100 * (1 - on / off):.1f}%); CPU a ticket {cpu_on / cpu_off:.3f}")  # fmt: skip
    rounds = ", ".join(f"{r:.3f}" for r in paired)
    print(f"  paired rounds: on/off {statistics.median(paired):.3f} median"
          f" ({min(paired):.3f}-{max(paired):.3f}): {rounds}")  # fmt: skip
    print(json.dumps({
        "tickets": count, "repeats": repeats, "gc_freeze": freeze,
        "telemetry_off_tickets_per_s": round(off, 1), "telemetry_on_tickets_per_s": round(on, 1),
        "ratio": round(on / off, 4), "off_runs": [round(r, 1) for r in rates["off"]],
        "on_runs": [round(r, 1) for r in rates["on"]],
        "cpu_ms_per_ticket_off": round(cpu_off, 3), "cpu_ms_per_ticket_on": round(cpu_on, 3),
        "cpu_ratio": round(cpu_on / cpu_off, 4),
        "paired_ratios": [round(r, 4) for r in paired],
        "telemetry_ratio_spread": [round(min(paired), 4), round(max(paired), 4)],
        "telemetry_ratio": round(statistics.median(paired), 4),
    }))  # fmt: skip


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=None,
                        help="default 50000, or 3000 with --telemetry both")  # fmt: skip
    parser.add_argument("--baseline", type=int, default=3_000)
    parser.add_argument("--telemetry", choices=("on", "off", "both"), default="on")
    parser.add_argument("--repeats", type=int, default=3, help="runs each way (--telemetry both)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once the app has started (--telemetry both)")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.telemetry == "both":
        telemetry_cost(args.tickets or 3_000, args.repeats, args.gc_freeze)
        return
    args.tickets = args.tickets or 50_000
    on = args.telemetry == "on"
    print(f"triage benchmark: {args.tickets} tickets, {os.cpu_count()} cores, telemetry"
          f" {args.telemetry}")  # fmt: skip
    full = asyncio.run(run(tickets(args.tickets), cascade=True, label="cascade", telemetry=on))
    print(f"  cascade on : {full['tickets']} tickets in {full['seconds']:.1f} s ="
          f" {full['tickets_per_s']:.0f}/s, accuracy {full['accuracy']:.4f},"
          f" escalation {full['escalation_rate']:.3f}, dead {full['dead']}")  # fmt: skip
    base = asyncio.run(run(tickets(args.baseline), cascade=False, label="no cascade", telemetry=on))
    print(f"  cascade off: {base['tickets']} tickets in {base['seconds']:.1f} s ="
          f" {base['tickets_per_s']:.0f}/s, accuracy {base['accuracy']:.4f}"
          f" (every ticket to the large model)")  # fmt: skip
    print(f"  ratio      : {full['tickets_per_s'] / base['tickets_per_s']:.1f}x the throughput")
    print(json.dumps({
        "tickets": full["tickets"],
        "seconds": round(full["seconds"], 2),
        "tickets_per_s": round(full["tickets_per_s"], 1),
        "no_cascade_tickets_per_s": round(base["tickets_per_s"], 1),
        "accuracy": round(full["accuracy"], 4),
        "escalation_rate": round(full["escalation_rate"], 4),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
