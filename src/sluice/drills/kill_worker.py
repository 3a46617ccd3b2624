"""The kill-worker drill: workers SIGKILLed while events flow; none may be lost or doubled.

A gateway (``sluice serve --no-workers``) and two workers (``sluice worker``)
share one store; events are sent over HTTP, each with its own ``Idempotency-Key`` and sent
again with the same key whenever the answer is lost; one worker is SIGKILLed and restarted
``kills`` times while they flow. The drill passes when every accepted event completes and no
key produced a second event.
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
    dead_reasons,
    final_views,
    keep_log,
    send_all,
    spawn,
)
from sluice.testing.servers import free_port, wait_ready


async def kill_worker_drill(options: DrillOptions) -> DrillReport:
    """The kill-worker drill with the CLI's options."""
    return await kill_worker(
        options.app_dir, options.workflow, options.inputs, kills=options.kills,
        progress=options.progress,
    )  # fmt: skip


async def kill_worker(
    app_dir: Path,
    workflow: str,
    inputs: Sequence[dict[str, Any]],
    kills: int = 3,
    interval_s: tuple[float, float] = (0.5, 1.5),
    progress: Callable[[str], None] = lambda _: None,
    seed: int = 3,
) -> DrillReport:
    """Run the kill-worker drill; see the module docstring."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SLUICE_STORE": f"sqlite:///{Path(tmp) / 'drill.db'}"}
        log = Path(tmp) / "processes.log"
        key = await create_api_key(app_dir, env)
        port = free_port()
        gateway = spawn(["serve", str(app_dir), "--port", str(port), "--no-workers"], env, log)
        workers = [spawn(["worker", str(app_dir)], env, log) for _ in range(2)]
        done_kills = 0
        started = time.monotonic()
        try:
            auth = {"authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30
            ) as client:
                await wait_ready(client, gateway, timeout_s=120)

                async def killer() -> None:
                    nonlocal done_kills
                    while done_kills < kills:
                        await asyncio.sleep(rng.uniform(*interval_s))
                        victim = workers.pop(0)
                        victim.send_signal(signal.SIGKILL)
                        await asyncio.to_thread(victim.wait)
                        done_kills += 1
                        progress(f"killed worker {victim.pid} ({done_kills}/{kills})")
                        workers.append(spawn(["worker", str(app_dir)], env, log))

                accepted, _ = await asyncio.gather(
                    send_all(client, workflow, inputs, concurrency=16), killer()
                )
                progress(f"accepted {len(accepted)}; waiting for completion")
                views = await final_views(client, list(accepted.values()))
        finally:
            for proc in (gateway, *workers):
                proc.send_signal(signal.SIGTERM)
            for proc in (gateway, *workers):
                await asyncio.to_thread(proc.wait, 30)
        elapsed = time.monotonic() - started
        # Every event the store holds, whether or not its sender saw the answer: more events
        # than keys means a resent request was accepted twice.
        stored = await count_events(app_dir, env, limit=2 * len(inputs) + 10)
        kept = keep_log(log, "kill-worker") if stored != len(views) or any(
            view.get("status") != "done" for view in views.values()
        ) else None  # fmt: skip
    states = {event_id: str(view.get("status")) for event_id, view in views.items()}
    completed = sum(s == "done" for s in states.values())
    dead = sum(s == "dead" for s in states.values())
    duplicates = stored - len(accepted)
    lost = len(accepted) - completed - dead
    checks = {
        "all_accepted_completed": completed == len(accepted) == len(inputs),
        "none_lost": lost == 0,
        "none_dead": dead == 0,
        "no_duplicates": duplicates == 0,
    }
    return DrillReport(
        drill="kill-worker", passed=all(checks.values()),
        accepted=len(accepted), completed=completed, lost=lost, duplicates=duplicates, dead=dead,
        seconds=round(elapsed, 2), checks=checks,
        figures={"kills": done_kills, "dead_reasons": dead_reasons(views),
                 **({"log": str(kept)} if kept else {}),
                 "events_per_s": round(completed / elapsed, 1) if elapsed else 0.0},
    )  # fmt: skip
