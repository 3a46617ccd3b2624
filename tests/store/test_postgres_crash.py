"""Crash recovery on PostgreSQL: two ``sluice worker`` processes share the queue while one of
them is SIGKILLed again and again as a few thousand events flow in.

Afterwards every event is done, each step has exactly one committed result per event (the
sink's effect happens once), nothing is left in the queue, and the sink ran for every event
(at least once: some perhaps again after a kill).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import orjson
import pytest

from sluice.config import load_settings
from sluice.store.base import NewEvent
from sluice.store.postgres import PostgresStore
from sluice.workflow.registry import WorkflowRegistry
from tests.conftest import MakeApp
from tests.crash_app import CONFIG as CRASH_CONFIG
from tests.crash_app import STEPS, WORKFLOW
from tests.store.conftest import POSTGRES_URL, drop_test_schema, new_schema, postgres_schema_url

EVENTS = 3_000
KILLS = 5
SINK_CONCURRENCY = 8  # the sink pool's concurrency in tests/crash_app.py

CONFIG = CRASH_CONFIG


def _start(app_dir: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SLUICE_STORE": url}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sluice", "worker", str(app_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _event(n: int, version: str) -> NewEvent:
    now = time.time()
    return NewEvent(f"ev{n:05}", "crash", version, "t", b'{"n": %d}' % n, "ingest", now, now + 600)


@pytest.mark.slow
async def test_sigkilled_worker_loses_nothing_and_repeats_no_effect(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """SIGKILL one of two workers at random; every event completes with one effect per step."""
    exec_log = tmp_path / "sink-executions.log"
    app_dir = make_app(CONFIG, {"crash.yaml": WORKFLOW % exec_log}, {"crash_steps.py": STEPS})
    settings = load_settings(app_dir, environ={})
    assert settings.workflows_dir is not None
    workflow = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools).get("crash")
    schema = new_schema()
    url = postgres_schema_url(schema)
    worker_log = tmp_path / "workers.log"
    ingress = PostgresStore(url, listen=False)
    await ingress.open()  # creates the schema before the workers race to
    steady = _start(app_dir, url, worker_log)
    victim = _start(app_dir, url, worker_log)
    rng = random.Random(11)
    kills = 0
    try:

        async def feed() -> None:
            for start in range(0, EVENTS, 100):
                batch = [_event(n, workflow.version) for n in range(start, start + 100)]
                await asyncio.gather(*(ingress.insert_event(e) for e in batch))
                await asyncio.sleep(0.12)

        async def killer() -> None:
            nonlocal victim, kills
            while kills < KILLS:
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                victim.send_signal(signal.SIGKILL)
                await asyncio.to_thread(victim.wait)
                kills += 1
                victim = _start(app_dir, url, worker_log)

        await asyncio.gather(feed(), killer())
        conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
        try:
            deadline = time.monotonic() + 180  # generous: a loaded machine drains slowly
            while time.monotonic() < deadline:
                if await conn.fetchval("SELECT count(*) FROM events WHERE state != 'done'") == 0:
                    break
                await asyncio.sleep(0.3)
            for proc in (steady, victim):
                proc.send_signal(signal.SIGTERM)
            for proc in (steady, victim):
                await asyncio.to_thread(proc.wait, 30)
            states = {r[0]: r[1] for r in await conn.fetch("SELECT id, state FROM events")}
            per_step = Counter(
                (r[0], r[1]) for r in await conn.fetch("SELECT event_id, step FROM step_results")
            )
            leftover_jobs = await conn.fetchval("SELECT count(*) FROM jobs")
            inputs = await conn.fetch("SELECT input FROM events")
        finally:
            await conn.close()
    finally:
        for proc in (steady, victim):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await ingress.aclose()
        await drop_test_schema(schema)

    assert kills == KILLS
    assert len(states) == EVENTS
    # One event per ticket, counted from the database.
    assert Counter(orjson.loads(bytes(r[0]))["n"] for r in inputs) == Counter(range(EVENTS))
    assert set(states.values()) == {"done"}, Counter(states.values())
    assert set(per_step.values()) == {1}
    assert len(per_step) == 3 * EVENTS
    assert leftover_jobs == 0
    executions = Counter(exec_log.read_text().split())
    assert set(executions) == set(states)
    reruns = sum(executions.values()) - len(executions)
    print(f"\n{EVENTS} events, {kills} kills, {reruns} sink re-executions")
    # Only a kill makes a re-run: at most the victim's sink jobs in flight when it struck.
    assert reruns <= KILLS * SINK_CONCURRENCY
    assert max(executions.values()) <= 2
