"""Runtime throughput: a no-op three-step workflow, end to end with durable commits.

Two phases per run. Saturated: events are offered as fast as 64 submitters can, and events per
second is counted from the first submit to the last event's final commit (synchronous=FULL).
Paced: events are offered at half that rate, and the claim-to-start latency p50/p99 (from a job
becoming ready to its step starting) is measured there; under saturation that figure is only
queueing time. Beside them, a baseline measured in the same run: the same rows (event, three
jobs, three results) inserted into SQLite directly with one transaction per event. The last
line is one JSON object.

    .venv/bin/python bench/runtime.py [--events 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from sluice.app import SluiceApp
from sluice.config import parse_settings
from sluice.workflow import Step, Workflow, WorkflowRegistry
from sluice.workflow.builtins import noop

ROWS_PER_EVENT = 7  # event + 3 jobs + 3 step results


def _settings(tmp: Path, pools: int) -> dict[str, object]:
    return {
        "store": f"sqlite:///{tmp / 'bench.db'}",
        "pools": {f"p{i}": {"concurrency": 64, "queue_limit": 1_000_000} for i in range(pools)},
        "runtime": {"synchronous": "full", "poll_ms": 50},
    }


async def run_sluice(
    events: int, rate: float | None = None, submitters: int = 64
) -> dict[str, float]:
    """Push ``events`` through the runtime (at ``rate``/s, or flat out); return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = _settings(Path(tmp), 3)
        settings = parse_settings(raw, Path(tmp), environ={})
        steps = tuple(Step(name=f"s{i}", pool=f"p{i}", fn=noop) for i in range(3))
        registry = WorkflowRegistry([Workflow(name="noop3", version="1", steps=steps)])
        app = SluiceApp.from_settings(settings, registry=registry)
        async with app:
            ids: list[str] = []
            todo = iter(range(events))

            async def submitter() -> None:
                for i in todo:
                    if rate is not None:
                        # Open-loop pacing: event i is due at start + i / rate.
                        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                    ids.append(await app.runtime.submit("noop3", {"i": i}))

            start = time.perf_counter()
            await asyncio.gather(*(submitter() for _ in range(submitters)))
            submitted = time.perf_counter() - start
            # Done when the last pool has started and finished everything.
            last = app.runtime.workers["p2"]
            while last.started < events or last.in_flight:  # noqa: ASYNC110 - a bench probe
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - start
        conn = sqlite3.connect(Path(tmp) / "bench.db")
        done = conn.execute("SELECT count(*) FROM events WHERE state = 'done'").fetchone()[0]
        waits = [
            (r[0] - r[1]) * 1000
            for r in conn.execute("SELECT started_at, queued_at FROM step_results")
        ]
        conn.close()
    if done != events:
        raise SystemExit(f"only {done} of {events} events finished")
    q = statistics.quantiles(waits, n=100)
    return {
        "events_per_s": events / elapsed,
        "submit_per_s": events / submitted,
        "claim_p50_ms": q[49],
        "claim_p99_ms": q[98],
    }


def run_baseline(events: int) -> float:
    """Rows per second for the same rows written straight into SQLite, a commit per event."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "base.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE events (id TEXT PRIMARY KEY, input BLOB, state TEXT)")
        conn.execute(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, event_id TEXT, step INT, input BLOB)"
        )
        conn.execute(
            "CREATE TABLE step_results (event_id TEXT, step INT, output BLOB,"
            " PRIMARY KEY (event_id, step))"
        )
        payload = b'{"i": 1}'
        start = time.perf_counter()
        for i in range(events):
            eid = f"{i:032x}"
            conn.execute("BEGIN")
            conn.execute("INSERT INTO events VALUES (?, ?, 'accepted')", (eid, payload))
            for step in range(3):
                conn.execute(
                    "INSERT INTO jobs(event_id, step, input) VALUES (?, ?, ?)",
                    (eid, step, payload),
                )
                conn.execute("INSERT INTO step_results VALUES (?, ?, ?)", (eid, step, payload))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return events * ROWS_PER_EVENT / elapsed


def main() -> None:
    """Run the benchmark and print the figures, medians of ``--repeat`` runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"runtime benchmark: {args.events} events x {args.repeat} runs, {os.cpu_count()} cores")
    runs = []
    bases = []
    for n in range(args.repeat):
        result = asyncio.run(run_sluice(args.events))
        paced = asyncio.run(run_sluice(args.events // 2, rate=result["events_per_s"] / 2))
        result["claim_p50_ms"] = paced["claim_p50_ms"]
        result["claim_p99_ms"] = paced["claim_p99_ms"]
        base = run_baseline(min(args.events, 5_000))
        runs.append(result)
        bases.append(base)
        print(
            f"  run {n + 1}: {result['events_per_s']:8.0f} events/s"
            f" (submit {result['submit_per_s']:.0f}/s); at half that rate claim p50"
            f" {result['claim_p50_ms']:.2f} ms"
            f" p99 {result['claim_p99_ms']:.2f} ms | baseline {base:8.0f} rows/s"
            f" = {base / ROWS_PER_EVENT:.0f} events/s"
        )
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    base = statistics.median(bases)
    print(
        f"median: {med['events_per_s']:.0f} events/s end to end; baseline (raw SQLite, a commit"
        f" per event) {base / ROWS_PER_EVENT:.0f} events/s; ratio"
        f" {med['events_per_s'] / (base / ROWS_PER_EVENT):.2f}; spread"
        f" {min(r['events_per_s'] for r in runs):.0f}-{max(r['events_per_s'] for r in runs):.0f}"
    )
    print(
        json.dumps(
            {
                "events_per_s": round(med["events_per_s"], 1),
                "baseline_rows_per_s": round(base, 1),
                "claim_p50_ms": round(med["claim_p50_ms"], 3),
                "claim_p99_ms": round(med["claim_p99_ms"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
