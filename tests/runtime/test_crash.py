"""Crash recovery: a real ``sluice serve`` is SIGKILLed at random while 10,000 events flow.

After the last restart every accepted event completes, each step has exactly one committed
result per event (the sink's effect happens once), and nothing is lost or left behind.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.ingress.apikeys import create_api_key
from sluice.testing import free_port, wait_ready
from tests.conftest import MakeApp
from tests.crash_app import CONFIG as CRASH_CONFIG
from tests.crash_app import STEPS, WORKFLOW

EVENTS = 10_000
KILLS = 4
SINK_CONCURRENCY = 8  # the sink pool's concurrency in tests/crash_app.py

CONFIG = "store: sqlite:///.sluice/crash.db\n" + CRASH_CONFIG


def _start(app_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sluice", "serve", str(app_dir), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
async def test_sigkill_loses_nothing_and_repeats_no_effect(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """SIGKILL at random points; every accepted event completes with one effect per step."""
    exec_log = tmp_path / "sink-executions.log"
    app_dir = make_app(CONFIG, {"crash.yaml": WORKFLOW % exec_log}, {"crash_steps.py": STEPS})
    async with SluiceApp.from_settings(load_settings(app_dir), run_pools=()) as app:
        _, key = await create_api_key(app.store, "t1")
    port = free_port()
    server_log = tmp_path / "server.log"
    proc = _start(app_dir, port, server_log)
    accepted: dict[int, str] = {}
    rng = random.Random(7)
    kills = 0
    auth = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=10, headers=auth
    ) as client:
        await wait_ready(client, proc)
        todo = iter(range(EVENTS))

        async def sender() -> None:
            for n in todo:
                while True:
                    try:
                        # The same key on every resend: a 202 lost to a kill is answered
                        # again with the first event, never a second one.
                        same_key = {"idempotency-key": f"ticket-{n}"}
                        resp = await client.post(
                            "/v1/workflows/crash/runs", json={"n": n}, headers=same_key
                        )
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)  # the server is down; send again
                        continue
                    if resp.status_code == 202:
                        accepted[n] = resp.json()["event_id"]
                        break
                    await asyncio.sleep(0.05)

        async def killer() -> None:
            nonlocal proc, kills
            while kills < KILLS:
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = _start(app_dir, port, server_log)
                await wait_ready(client, proc)

        senders = asyncio.gather(*(sender() for _ in range(24)))
        await asyncio.gather(senders, killer())
        assert len(accepted) == EVENTS
        db = app_dir / ".sluice" / "crash.db"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as conn:
                open_events = conn.execute(
                    "SELECT count(*) FROM events WHERE state != 'done'"
                ).fetchone()[0]
            if open_events == 0:
                break
            await asyncio.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)

    assert kills == KILLS
    with sqlite3.connect(app_dir / ".sluice" / "crash.db") as conn:
        states = dict(conn.execute("SELECT id, state FROM events").fetchall())
        per_step = Counter(conn.execute("SELECT event_id, step FROM step_results").fetchall())
        leftover_jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        sunk = conn.execute("SELECT count(*) FROM step_results WHERE name = 'sink'").fetchone()
        tickets = Counter(
            orjson.loads(raw)["n"] for (raw,) in conn.execute("SELECT input FROM events")
        )
    # One event per ticket, counted from the database: resends made no second event.
    assert tickets == Counter(range(EVENTS))
    assert len(set(accepted.values())) == EVENTS
    # Nothing lost: every accepted event (and any whose answer the kill swallowed) is done.
    assert all(states.get(eid) == "done" for eid in accepted.values())
    assert set(states.values()) == {"done"}
    # Effects once: exactly one committed result per (event, step), no stray next jobs.
    assert set(per_step.values()) == {1}
    assert len(per_step) == 3 * len(states)
    assert sunk[0] == len(states)
    assert leftover_jobs == 0
    # At least once: the sink ran for every event, some perhaps again after a kill.
    executions = Counter(exec_log.read_text().split())
    assert set(executions) == set(states)
    reruns = sum(executions.values()) - len(executions)
    print(f"\n{len(states)} events, {kills} kills, {reruns} sink re-executions")
    # Only a kill makes a re-run: at most the sink jobs in flight when it struck, each once.
    assert reruns <= KILLS * SINK_CONCURRENCY
    assert max(executions.values()) <= 2
