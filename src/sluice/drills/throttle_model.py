"""The throttle-model drill: the costly model is slow and answers 429 beyond its capacity.

The model simulator plays the provider (log-normal latency, ``max_concurrency`` calls in
flight, 429 with ``Retry-After`` past that). A drill app is written from the given app: its
workflow's classify step with the cascade's first (local) tier and the simulated model as
the last tier, threshold 1.0 so that every event wants the costly model, no response cache
(so repeats reach the model). Events are offered open loop at ``factor`` times the model's
capacity, twice, in the same run:

- ``guarded``: the reliability machinery on (a bulkhead of as many calls in flight as the
  provider takes, breaker and retry budget on the costly tier with the first tier as
  fallback, the SLO guard with the ``degrade`` policy);
- ``bare``: ``reliability.guard_tiers: false`` and no SLO: every failure fails the step and
  the executor's plain retries (honouring ``Retry-After``) apply.

Each side reports model calls per accepted event, p50/p95 accept-to-done latency of admitted
events, the share refused with 503, dead events and the server's peak memory. The drill
passes when the guarded side completes every accepted event, makes at most 1.1 model calls
per accepted event (no retry storm) and keeps the p95 of admitted events within its SLO.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from sluice.drills.apps import LLM_MODEL, LLM_PRICES, link_shared, llm_entry, local_outbound
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
from sluice.errors import ConfigError
from sluice.models.metrics import percentile
from sluice.testing.servers import free_port, wait_ready

#: The simulated provider: median 200 ms, p95 600 ms, 4 calls in flight at most.
SIMULATOR: dict[str, float] = {
    "p50_ms": 200.0, "p95_ms": 600.0, "max_concurrency": 4, "retry_after": 1.0,
}  # fmt: skip
#: The guarded side's SLO: accept-to-done p95 of one second, degrading when it slips.
SLO: dict[str, Any] = {"p95_ms": 1000, "error_rate": 0.05, "window_s": 10, "policy": "degrade",
       "recover_s": 5, "min_events": 20}  # fmt: skip
MAX_CALLS_PER_EVENT = 1.1
_WORKFLOW = "drill"


def model_capacity(p50_ms: float, p95_ms: float, concurrency: int) -> float:
    """Calls per second a provider serves: concurrency over the mean of its latency."""
    sigma = (math.log(p95_ms) - math.log(p50_ms)) / statistics.NormalDist().inv_cdf(0.95)
    mean_s = p50_ms * math.exp(sigma**2 / 2) / 1000
    return concurrency / mean_s


def first_tier(app_dir: Path, workflow: str) -> tuple[str, dict[str, Any]]:
    """The name and ``models:`` entry of the first tier of a workflow's classify cascade."""
    settings, flow = load_workflow(app_dir, workflow)
    for step in flow.steps:
        cascade = step.options.get("cascade")
        if step.uses == "classify" and cascade:
            name = str(cascade[0]["model"])
            return name, dict(settings.extra["models"][name])
    raise ConfigError(f"{app_dir}: workflow {workflow!r} has no classify step with a cascade")


def write_drill_app(
    dest: Path, source: Path, workflow: str, llm_url: str, *, guarded: bool
) -> Path:
    """An app in ``dest``: the source's first tier, then the simulated model; see above."""
    name, entry = first_tier(source, workflow)
    # Training data read in place, trained artifacts shared: the first tier trains once.
    link_shared(dest, source)
    config: dict[str, Any] = {
        "store": "sqlite:///.sluice/drill.db",
        "workflows": "workflows",
        "pools": {"inference": {"concurrency": 64, "queue_limit": 400}},
        "models": {
            name: entry,
            LLM_MODEL: llm_entry(llm_url, timeout_s=5, max_connections=64),
        },
        "prices": {LLM_MODEL: dict(LLM_PRICES)},
        "rate_limits": {"default": {"rate": 100_000, "burst": 100_000}},
        # The provider's concurrency quota is known: the bulkhead keeps calls within it.
        "reliability": {
            "guard_tiers": guarded,
            "breaker": {"failure_threshold": 5, "open_s": 2},
            "max_in_flight": {LLM_MODEL: int(SIMULATOR["max_concurrency"])},
        },
    }
    config = local_outbound(config)  # the simulated provider listens on loopback
    (dest / "sluice.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    flow: dict[str, Any] = {
        "name": _WORKFLOW,
        "version": 1,
        "budget_ms": 10_000,
        "input_schema": {"type": "object", "required": ["text"],
                         "properties": {"text": {"type": "string", "minLength": 1}}},
        "steps": [{"name": "classify", "pool": "inference", "uses": "classify",
                   "budget_ms": 5000, "retries": 3,
                   "options": {"field": "text",
                               "cascade": [{"model": name, "threshold": 1.0},
                                           {"model": LLM_MODEL}]}}],
    }  # fmt: skip
    if guarded:
        flow["slo"] = dict(SLO)
    (dest / "workflows" / "drill.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    return dest


async def _run_side(
    options: DrillOptions, tmp: Path, llm_url: str, rate: float, *, guarded: bool
) -> dict[str, Any]:
    side = "guarded" if guarded else "bare"
    app = write_drill_app(tmp / side, options.app_dir, options.workflow, llm_url, guarded=guarded)
    env = {**os.environ, "SLUICE_STORE": f"sqlite:///{tmp / side / 'drill.db'}"}
    log = tmp / f"{side}.log"
    key = await create_api_key(app, env)
    port = free_port()
    server = spawn(["serve", str(app), "--port", str(port)], env, log)
    auth = {"authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as client:
            await wait_ready(client, server, timeout_s=180)
            async with httpx.AsyncClient(base_url=llm_url.removesuffix("/v1")) as sim:
                await sim.post("/sim/reset")
                options.progress(f"{side}: offering {rate:.0f} events/s for {options.seconds:g} s")
                load = await open_loop(
                    base, f"/v1/workflows/{_WORKFLOW}/runs", options.inputs, rate=rate,
                    seconds=options.seconds, headers=auth, progress=options.progress,
                )  # fmt: skip
                views = await final_views(client, list(load.accepted.values()))
                stats = (await sim.get("/sim/stats")).json()
            status = (await client.get("/v1/status")).json()
        peak_mb = memory_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 30)
    stored = await count_events(app, env, limit=2 * load.sent + 10)
    done = [v for v in views.values() if v.get("status") == "done"]
    latencies = [(v["finished_at"] - v["created_at"]) * 1000 for v in done]
    accepted = len(load.accepted)
    answered_by = [v.get("result", {}).get("model") for v in done]
    return {
        "offered": load.sent + load.dropped,
        "offered_per_s": round(load.offered_per_s, 1),
        "accepted": accepted,
        "completed": len(done),
        "dead": sum(v.get("status") == "dead" for v in views.values()),
        "dead_reasons": dead_reasons(views, most=3),
        "lost": sum(v.get("status") == "accepted" for v in views.values()),
        "duplicates": stored - accepted,
        "refused_503_share": round(load.refused_share, 4),
        "client_errors": load.errors + load.limited_429 + load.dropped,
        "model_calls": int(stats.get("requests", 0)),
        "model_429s": int(stats.get("throttled", 0)),
        "calls_per_accepted": round(stats.get("requests", 0) / accepted, 3) if accepted else 0.0,
        "answered_by_model_share": (
            round(answered_by.count(LLM_MODEL) / len(done), 4) if done else 0.0
        ),
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 95), 1) if latencies else None,
        "peak_rss_mb": round(peak_mb, 1),
        "breakers": [(b["name"], b["state"]) for b in status.get("breakers", [])],
        "slo_transitions": {
            k: v for g in status.get("slo_guards", []) for k, v in g["transitions"].items()
        },
        "escalations_skipped": status.get("escalations_skipped", {}),
    }


async def throttle_model(options: DrillOptions) -> DrillReport:
    """Run the throttle-model drill; see the module docstring."""
    capacity = model_capacity(
        SIMULATOR["p50_ms"], SIMULATOR["p95_ms"], int(SIMULATOR["max_concurrency"])
    )
    rate = options.factor * capacity
    _, entry = first_tier(options.app_dir, options.workflow)
    train = options.app_dir / str(entry.get("train", "data/train.csv"))
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sim_port = free_port()
        simulator = spawn(
            ["simulate-model", "--port", str(sim_port), "--data", str(train), "--seed", "7",
             "--p50-ms", str(SIMULATOR["p50_ms"]), "--p95-ms", str(SIMULATOR["p95_ms"]),
             "--max-concurrency", str(SIMULATOR["max_concurrency"]),
             "--retry-after", str(SIMULATOR["retry_after"])],
            dict(os.environ), tmp / "simulator.log",
        )  # fmt: skip
        llm_url = f"http://127.0.0.1:{sim_port}/v1"
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim_port}") as sim:
                await wait_ready(sim, simulator, path="/v1/models", timeout_s=120)
            sides = {}
            for guarded in (True, False):
                side = "guarded" if guarded else "bare"
                sides[side] = await _run_side(options, tmp, llm_url, rate, guarded=guarded)
                options.progress(f"{side}: {sides[side]}")
        finally:
            simulator.send_signal(signal.SIGTERM)
            await asyncio.to_thread(simulator.wait, 30)
    g = sides["guarded"]
    checks = {
        "all_accepted_completed": g["completed"] == g["accepted"] > 0,
        "no_duplicates": g["duplicates"] == 0,
        f"calls_per_accepted_at_most_{MAX_CALLS_PER_EVENT}": g["calls_per_accepted"]
        <= MAX_CALLS_PER_EVENT,
        f"p95_within_slo_{SLO['p95_ms']}_ms": (g["p95_ms"] or 0) <= SLO["p95_ms"],
    }
    return DrillReport(
        drill="throttle-model", passed=all(checks.values()),
        accepted=g["accepted"], completed=g["completed"], lost=g["lost"],
        duplicates=g["duplicates"], dead=g["dead"], seconds=round(time.monotonic() - started, 1),
        checks=checks,
        figures={"model_capacity_per_s": round(capacity, 1), "offered_per_s": round(rate, 1),
                 "factor": options.factor, "simulator": SIMULATOR, "slo": SLO,
                 "guarded": g, "bare": sides["bare"]},
    )  # fmt: skip
