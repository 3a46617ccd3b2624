"""The README's demo: start a real server on an example app, send it events, report.

``python -m sluice.demo [APP_DIR] [--events N] [--rate R]`` starts ``sluice serve`` on a free
port, posts events over HTTP at the given rate with a progress line, waits for all of them,
and prints what happened: accepted, completed, dead, and end-to-end latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"
NAMES = ["  ada lovelace", "GRACE hopper ", "alan   turing", "katherine johnson", "edsger dijkstra"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("the server did not become ready in 20 s")


async def drive(
    base_url: str, key: str, proc: subprocess.Popen[bytes], events: int, rate: float
) -> int:
    """Send ``events`` greet runs at ``rate``/s, wait for them, print the report."""
    auth = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=auth) as client:
        await _wait_ready(client, proc)
        ids: list[str] = []
        refused = 0
        start = time.perf_counter()
        for i in range(events):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            resp = await client.post("/v1/workflows/greet/runs", json={"name": NAMES[i % 5]})
            if resp.status_code == 202:
                ids.append(resp.json()["event_id"])
            else:
                refused += 1
            if (i + 1) % max(1, events // 20) == 0 or i + 1 == events:
                print(f"\rsent {i + 1}/{events}", end="", flush=True)
        print()
        runs: list[dict[str, Any]] = []
        for event_id in ids:
            for _ in range(200):
                run = (await client.get(f"/v1/runs/{event_id}")).json()
                if run["status"] != "accepted":
                    break
                await asyncio.sleep(0.05)
            runs.append(run)
    done = [r for r in runs if r["status"] == "done"]
    latency = sorted((r["finished_at"] - r["created_at"]) * 1000 for r in done)
    print(f"accepted {len(ids)}, refused {refused}, done {len(done)},"
          f" dead {sum(r['status'] == 'dead' for r in runs)}")  # fmt: skip
    if len(latency) >= 2:
        q = statistics.quantiles(latency, n=100)
        print(f"end-to-end latency ms: p50 {q[49]:.1f}  p95 {q[94]:.1f}  p99 {q[98]:.1f}")
    if done:
        print(f"example result: {done[0]['result']}")
        print("steps of that run:", ", ".join(
            f"{s['step']} queued {s['queued_ms']:.1f} ms ran {s['run_ms']:.1f} ms"
            for s in done[0]["steps"]))  # fmt: skip
    return 0 if len(done) == len(ids) else 1


def main() -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app_dir", nargs="?", type=Path, default=EXAMPLE)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=250.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env_store = f"sqlite:///{Path(tmp) / 'demo.db'}"
        env = {**os.environ, "SLUICE_STORE": env_store}
        sluice = [sys.executable, "-m", "sluice"]
        key = subprocess.run(
            [*sluice, "apikey", "create", "--tenant", "demo", "--app", str(args.app_dir)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        print(f"starting sluice serve {args.app_dir} on port {port} (store {env_store})")
        proc = subprocess.Popen([*sluice, "serve", str(args.app_dir), "--port", str(port)], env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            code = asyncio.run(drive(url, key, proc, args.events, args.rate))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
