"""The flood drill: offered load far beyond capacity; ingress sheds, admitted work stays fast.

The app is served for real as a gateway (``sluice serve --no-workers``) and a worker
process on a fresh SQLite store (with ``SLUICE_KV`` pointing at Redis, the worker's SLO
guard reaches the gateway's admission too). First its capacity is measured: a short
open-loop burst keeps the queues full and completions over its second half are counted.
Then events are offered open loop at ``factor`` times that capacity for ``seconds``. The
drill passes when every accepted event completes (none lost, dead or doubled), nothing but
202, 503 (with ``Retry-After``) or 429 comes back, the p95 accept-to-done latency of admitted
events stays within the workflow's SLO (``slo.p95_ms``; without one, the workflow's budget),
and the processes' memory grows by less than ``MAX_GROWTH_MB`` over their size when warm.
The load generator shares the machine: when it cannot offer the asked rate, the report says
what it did offer (``achieved_factor``, ``client_dropped``: requests not sent because 512
were already waiting for an answer).
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from sluice.drills.base import (
    DrillOptions,
    DrillReport,
    count_events,
    create_api_key,
    dead_reasons,
    final_views,
    load_workflow,
    spawn,
)
from sluice.drills.load import memory_mb, open_loop
from sluice.models.metrics import percentile
from sluice.testing.servers import free_port, wait_ready

MAX_GROWTH_MB = 256.0
_CALIBRATE_S = 4.0
_CALIBRATE_RATE = 1500.0


def _slo_ms(app_dir: Path, workflow: str) -> tuple[float, str]:
    """The workflow's p95 target: its ``slo.p95_ms``, else its whole budget."""
    _, flow = load_workflow(app_dir, workflow)
    slo = flow.extra.get("slo") or {}
    if "p95_ms" in slo:
        return float(slo["p95_ms"]), "slo.p95_ms"
    return float(flow.budget_ms), "budget_ms"


async def _capacity(base: str, path: str, options: DrillOptions, headers: dict[str, str],
                    client: httpx.AsyncClient) -> tuple[float, int]:  # fmt: skip
    """Events finished per second by an app kept saturated, and the events the burst took.

    A burst past any plausible capacity fills the queues; completions are counted over its
    second half, when the queues are full and the app works as fast as it can under load.
    """
    began = time.time()
    burst = await open_loop(base, path, options.inputs, rate=_CALIBRATE_RATE,
                            seconds=_CALIBRATE_S, headers=headers)  # fmt: skip
    ended = time.time()
    views = await final_views(client, list(burst.accepted.values()))
    start = began + (ended - began) / 2
    finished = [v["finished_at"] for v in views.values() if v.get("status") == "done"]
    in_window = sum(start <= t <= ended for t in finished)
    return in_window / max(ended - start, 1e-3), len(burst.accepted)


async def flood(options: DrillOptions) -> DrillReport:
    """Run the flood drill; see the module docstring."""
    slo_ms, slo_source = _slo_ms(options.app_dir, options.workflow)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "SLUICE_STORE": f"sqlite:///{tmp / 'flood.db'}"}
        key = await create_api_key(options.app_dir, env)
        port = free_port()
        # The production topology: a gateway that only admits and a worker process, so the
        # flood of requests and the work itself do not share one event loop.
        server = spawn(["serve", str(options.app_dir), "--port", str(port), "--no-workers"],
                       env, tmp / "log")  # fmt: skip
        worker = spawn(["worker", str(options.app_dir)], env, tmp / "log")
        auth = {"authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}"
        path = f"/v1/workflows/{options.workflow}/runs"
        try:
            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as client:
                await wait_ready(client, server, timeout_s=300)
                capacity, burst = await _capacity(base, path, options, auth, client)
                warm_mb = sum(memory_mb(p.pid, "VmRSS") for p in (server, worker))
                rate = options.factor * max(capacity, 1.0)
                options.progress(f"capacity {capacity:.0f} events/s; offering {rate:.0f}/s"
                                 f" for {options.seconds:g} s")  # fmt: skip
                load = await open_loop(base, path, options.inputs, rate=rate,
                                       seconds=options.seconds, headers=auth,
                                       progress=options.progress)  # fmt: skip
                views = await final_views(client, list(load.accepted.values()))
                status = (await client.get("/v1/status")).json()
            peak_mb = sum(memory_mb(p.pid) for p in (server, worker))
        finally:
            for proc in (server, worker):
                proc.send_signal(signal.SIGTERM)
            for proc in (server, worker):
                await asyncio.to_thread(proc.wait, 30)
        # Events without idempotency keys: more stored than accepted means an event doubled.
        stored = await count_events(options.app_dir, env, limit=10 * (burst + load.sent) + 10)
    done = [v for v in views.values() if v.get("status") == "done"]
    latencies = [(v["finished_at"] - v["created_at"]) * 1000 for v in done]
    accepted = len(load.accepted)
    dead = sum(v.get("status") == "dead" for v in views.values())
    lost = sum(v.get("status") == "accepted" for v in views.values())
    unexpected = {s: n for s, n in load.statuses.items() if s not in (202, 429, 503)}
    p95 = percentile(latencies, 95) if latencies else 0.0
    growth = peak_mb - warm_mb
    figures: dict[str, Any] = {
        "capacity_per_s": round(capacity, 1),
        "asked_factor": options.factor,
        "offered_per_s": round(load.offered_per_s, 1),
        "achieved_factor": round(load.offered_per_s / capacity, 2) if capacity else 0.0,
        "sent": load.sent,
        "refused_503_share": round(load.refused_share, 4),
        "limited_429": load.limited_429,
        "client_errors": load.errors,
        "client_dropped": load.dropped,
        "unexpected_statuses": unexpected,
        "admitted_per_s": round(accepted / load.seconds, 1) if load.seconds else 0.0,
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p95_ms": round(p95, 1),
        "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "dead_reasons": dead_reasons(views, most=3),
        "slo_p95_ms": slo_ms,
        "slo_from": slo_source,
        "warm_rss_mb": round(warm_mb, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "slo_guards": [
            {
                "workflow": g["workflow"],
                "state": g["state"],
                "transitions": g["transitions"],
                "counts": g["counts"],
            }
            for g in status.get("slo_guards", [])
        ],
    }
    checks = {
        "all_accepted_completed": len(done) == accepted > 0,
        "no_duplicates": stored == burst + accepted,
        "only_202_429_503": not unexpected and load.errors == 0,
        f"p95_within_{slo_ms:g}_ms": p95 <= slo_ms,
        f"memory_growth_under_{MAX_GROWTH_MB:g}_mb": growth < MAX_GROWTH_MB,
    }
    return DrillReport(
        drill="flood", passed=all(checks.values()), accepted=accepted, completed=len(done),
        lost=lost, duplicates=stored - burst - accepted, dead=dead,
        seconds=round(time.monotonic() - started, 1),
        checks=checks, figures=figures,
    )  # fmt: skip
