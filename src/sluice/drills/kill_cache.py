"""The kill-cache drill: the shared cache's Redis is SIGKILLed under load; requests continue.

A private ``redis-server`` on a free port is the app's KV and holds both caches
(``SLUICE_CACHE_BACKEND=kv``); the app runs for real as ``sluice serve`` (gateway and worker
pools in one process, so ``/v1/status`` shows the cache counters of the process that runs the
steps) on a temporary SQLite store. Events are offered at a steady rate for ``seconds``, each
ticket drawn from a pool of ``len(inputs) / repeat`` distinct ones so that repeats hit the
cache; halfway, Redis is SIGKILLed and stays dead while the load goes on.

The drill reports the usual accounting, the cache hit rate before and after the kill (from
``/v1/status``), accept-to-end latency p50/p95 of the events created before and after it
(from the run's ``created_at`` / ``finished_at``), cache errors counted by the app, and every
error a client saw, and the time of each cache lookup before and after it (from the ``cache
.lookup`` spans the app keeps in its store). It passes when every accepted event completes, no
client saw an error, a lookup after the kill costs no more than one before it (the dead store
is skipped, not waited for: :data:`LOOKUP_SLACK_MS`), and the events' p95 after the kill stays
within :func:`latency_bound`.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from sluice.drills.base import (
    DrillOptions,
    DrillReport,
    count_events,
    create_api_key,
    settle,
    spawn,
)
from sluice.models.metrics import percentile
from sluice.testing.redis_server import RedisServer
from sluice.testing.servers import free_port, wait_ready

#: Most requests the load generator keeps open at once (the load is bounded too).
MAX_IN_FLIGHT = 64
#: Absolute slack of the latency bound: one Redis connect timeout of the KV client
#: (:class:`sluice.kv.redis.RedisKV`).
LATENCY_SLACK_MS = 250.0

#: How much slower a cache lookup after the kill may be than one before it, at p95. A lookup
#: of a live Redis is one round trip; after the kill the breaker skips the store, so a lookup
#: is no work at all. One that waited for the KV client's connect timeout (250 ms) would be
#: two hundred times this slack.
LOOKUP_SLACK_MS = 1.0


def latency_bound(p95_before_ms: float) -> float:
    """The p95 an event may take after the kill: ``3 x p95 before + 250 ms``.

    After the kill every lookup misses, so events do the work that only first-seen tickets
    did before: the uncached path, whose cost already sits in the p95 before (a third or more
    of the tickets are misses before the kill). The factor 3 and one Redis connect timeout
    absorb the noise of a shared machine between the two halves of one run; the lookup check
    (:data:`LOOKUP_SLACK_MS`) is the sharp one for the cost of the dead store itself.
    """
    return 3 * p95_before_ms + LATENCY_SLACK_MS


async def kill_cache_drill(options: DrillOptions) -> DrillReport:
    """The kill-cache drill with the CLI's options (``--seconds`` is the load's length)."""
    return await kill_cache(
        options.app_dir, options.workflow, options.inputs, seconds=options.seconds,
        progress=options.progress,
    )  # fmt: skip


async def _status(client: httpx.AsyncClient) -> dict[str, Any]:
    """The caches section of ``/v1/status``."""
    resp = await client.get("/v1/status")
    resp.raise_for_status()
    caches: dict[str, Any] = resp.json()["caches"]
    return caches


def _totals(caches: dict[str, Any]) -> tuple[int, int, int]:
    """Hits, misses and errors over every cache."""
    return (
        sum(int(c.get("hits", 0)) for c in caches.values()),
        sum(int(c.get("misses", 0)) for c in caches.values()),
        sum(int(c.get("errors", 0)) for c in caches.values()),
    )


def _rate(hits: int, misses: int) -> float:
    return round(hits / (hits + misses), 4) if hits + misses else 0.0


def _ms(values: Sequence[float], q: float, digits: int = 1) -> float:
    return round(percentile(values, q), digits) if values else 0.0


async def kill_cache(
    app_dir: Path,
    workflow: str,
    inputs: Sequence[dict[str, Any]],
    *,
    seconds: float = 20.0,
    repeat: int = 5,
    progress: Callable[[str], None] = lambda _: None,
    seed: int = 5,
) -> DrillReport:
    """Run the kill-cache drill; see the module docstring."""
    if not inputs or seconds <= 0 or repeat < 1:
        raise ValueError("kill-cache needs inputs, seconds > 0 and repeat >= 1")
    rng = random.Random(seed)
    distinct = list(inputs[: max(1, len(inputs) // repeat)])
    plan = [rng.choice(distinct) for _ in inputs]
    interval = seconds / len(plan)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(log=Path(tmp) / "redis.log")
        redis.start()
        env = {
            **os.environ,
            "SLUICE_STORE": f"sqlite:///{Path(tmp) / 'drill.db'}",
            "SLUICE_KV": f"{redis.url}?prefix=drill:",
            "SLUICE_CACHE_BACKEND": "kv",
        }
        log = Path(tmp) / "processes.log"
        key = await create_api_key(app_dir, env)
        port = free_port()
        server = spawn(["serve", str(app_dir), "--port", str(port)], env, log)
        accepted: dict[str, str] = {}
        client_errors: dict[str, int] = {}
        kill_at = 0.0
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"authorization": f"Bearer {key}"},
                timeout=30,
            ) as client:
                await wait_ready(client, server, timeout_s=300)
                progress(f"app ready; offering {len(plan)} events over {seconds:g} s")
                gate = asyncio.Semaphore(MAX_IN_FLIGHT)

                async def send(n: int, data: dict[str, Any]) -> None:
                    key = f"drill-cache-{n}"
                    async with gate:
                        for _ in range(5):  # resend a lost answer with the same key
                            try:
                                resp = await client.post(
                                    f"/v1/workflows/{workflow}/runs", json=data,
                                    headers={"idempotency-key": key},
                                )  # fmt: skip
                            except httpx.TransportError as exc:
                                name = type(exc).__name__
                                client_errors[name] = client_errors.get(name, 0) + 1
                                await asyncio.sleep(0.05)
                                continue
                            if resp.status_code == 202:
                                accepted[key] = resp.json()["event_id"]
                                return
                            status = str(resp.status_code)
                            client_errors[status] = client_errors.get(status, 0) + 1
                            await asyncio.sleep(0.1)

                started = time.monotonic()
                tasks: list[asyncio.Task[None]] = []
                before: dict[str, Any] = {}
                for n, data in enumerate(plan):
                    await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
                    if not kill_at and n >= len(plan) // 2:
                        kill_at = time.time()
                        redis.kill()
                        # Counted after the kill: no later lookup can hit a dead store, so
                        # lookups racing the kill cannot blur the rate after it.
                        before = await _status(client)
                        progress(f"killed redis-server after {n} events")
                    tasks.append(asyncio.create_task(send(n, data)))
                await asyncio.gather(*tasks)
                progress(f"accepted {len(accepted)}; waiting for completion")
                states = await settle(client, list(accepted.values()))
                after = await _status(client)
                views = await _views(client, list(accepted.values()))
        finally:
            server.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.wait, 30)
            redis.kill()
        elapsed = time.monotonic() - started
        stored = await count_events(app_dir, env, limit=2 * len(plan) + 10)
        lookups = await lookup_times(app_dir, env, list(accepted.values()))
    completed = sum(s == "done" for s in states.values())
    dead = sum(s == "dead" for s in states.values())
    duplicates = stored - len(accepted)
    lost = len(accepted) - completed - dead
    early = [v for v in views if v["created_at"] < kill_at]
    late = [v for v in views if v["created_at"] >= kill_at]
    ms_before = [(v["finished_at"] - v["created_at"]) * 1000 for v in early]
    ms_after = [(v["finished_at"] - v["created_at"]) * 1000 for v in late]
    hits0, misses0, errors0 = _totals(before)
    hits1, misses1, errors1 = _totals(after)
    p95_before, p95_after = _ms(ms_before, 95), _ms(ms_after, 95)
    bound = round(latency_bound(p95_before), 1)
    lookups_before = [ms for at, ms in lookups if at < kill_at]
    lookups_after = [ms for at, ms in lookups if at >= kill_at]
    lookup_p95_before, lookup_p95_after = _ms(lookups_before, 95, 3), _ms(lookups_after, 95, 3)
    checks = {
        "all_accepted_completed": completed == len(accepted) == len(plan),
        "none_lost": lost == 0,
        "none_dead": dead == 0,
        "no_duplicates": duplicates == 0,
        "no_client_errors": not client_errors,
        "cache_hit_before_kill": hits0 > 0,
        "cache_loss_noticed": errors1 > errors0,
        "lookup_after_kill_no_slower": bool(lookups_after)
        and lookup_p95_after <= lookup_p95_before + LOOKUP_SLACK_MS,
        "latency_after_kill_bounded": bool(ms_after) and p95_after <= bound,
    }
    return DrillReport(
        drill="kill-cache", passed=all(checks.values()),
        accepted=len(accepted), completed=completed, lost=lost, duplicates=duplicates, dead=dead,
        seconds=round(elapsed, 2), checks=checks,
        figures={
            "events_per_s_offered": round(len(plan) / seconds, 1),
            "distinct_tickets": len({str(d) for d in plan}),
            "client_errors": sum(client_errors.values()),
            "client_errors_by_kind": client_errors,
            "hit_rate_before_kill": _rate(hits0, misses0),
            "hit_rate_after_kill": _rate(hits1 - hits0, misses1 - misses0),
            "cache_errors": errors1,
            "events_before_kill": len(early),
            "events_after_kill": len(late),
            "p50_ms_before_kill": _ms(ms_before, 50),
            "p95_ms_before_kill": p95_before,
            "p50_ms_after_kill": _ms(ms_after, 50),
            "p95_ms_after_kill": p95_after,
            "max_ms_after_kill": _ms(ms_after, 100),
            "p95_bound_ms": bound,
            "lookups_before_kill": len(lookups_before),
            "lookups_after_kill": len(lookups_after),
            "lookup_p95_ms_before_kill": lookup_p95_before,
            "lookup_p95_ms_after_kill": lookup_p95_after,
            "lookup_max_ms_after_kill": _ms(lookups_after, 100, 3),
        },
    )  # fmt: skip


async def _views(client: httpx.AsyncClient, event_ids: list[str]) -> list[dict[str, Any]]:
    """The run views of the finished events (created_at and finished_at)."""
    gate = asyncio.Semaphore(16)

    async def one(event_id: str) -> dict[str, Any] | None:
        async with gate:
            view: dict[str, Any] = (await client.get(f"/v1/runs/{event_id}")).json()
        return view if view.get("finished_at") is not None else None

    found = await asyncio.gather(*(one(e) for e in event_ids))
    return [v for v in found if v is not None]


async def lookup_times(
    app_dir: Path, env: dict[str, str], event_ids: Sequence[str]
) -> list[tuple[float, float]]:
    """(start, seconds since the epoch; duration, ms) of every cache lookup of the events.

    Read from the ``cache.lookup`` spans the app keeps in its store (tracing is on by default
    with the embedded store); empty when the app records no spans.
    """
    from sluice.app import build_store, encryption_codec
    from sluice.config import load_settings

    settings = load_settings(app_dir, environ=env)
    store = build_store(settings, encryption_codec(settings))
    await store.open()
    try:
        found: list[tuple[float, float]] = []
        for event_id in event_ids:
            trace_id = await store.event_trace_id(event_id)
            if trace_id is None:
                continue
            found += [
                (span.start_ns / 1e9, (span.end_ns - span.start_ns) / 1e6)
                for span in await store.trace_spans(trace_id)
                if span.name.startswith("cache.lookup")
            ]
        return found
    finally:
        await store.aclose()
