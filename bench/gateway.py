"""AI gateway overhead: chat completions through Sluice beside direct calls to the same simulator.

Starts the model simulator answering at once (``sluice simulate-model --p50-ms 0``, uvicorn,
its own process) and ``sluice serve --no-workers`` on an app whose ``gateway:`` section routes
the group ``chat`` to it (its own process). Every request through Sluice meets the whole
machinery: API key, request and token rate limits, response cache (a miss: each request
carries its own ``seed``), SLO guard, spend budget reservation and settlement, circuit breaker,
cost and token accounting, and tracing (on by default: one span a request). The baseline,
measured in the same run with the same load generators, is the same request sent straight to
the simulator, so the difference is Sluice's own cost (the simulator answers through the same
kind of server).

- Maximum rate (closed loop): wrk, 2 threads, 64 connections, ``--seconds`` per target.
- Latency (open loop): requests paced at ``--rate`` per second (default 500) to each target
  for ``--seconds`` from this process (aiohttp), the two targets' requests interleaved in the
  same run, so both meet the same moments of a shared, noisy machine; added p50/p99 =
  through Sluice - direct, per round, then the median over ``--rounds`` rounds.

The last line is one JSON object. About 90 s by default::

    .venv/bin/python bench/gateway.py [--seconds 8] [--rounds 3] [--rate 500] [--cache-entries 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
import httpx
import orjson

from http_client import SLUICE, start_simulator
from sluice.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "I still have not received my new card, when will it arrive?"
CONFIG = """
store: sqlite:///.sluice/gateway.db
outbound: {{allow_private: ["127.0.0.1/32"]}}  # the simulated provider is on this machine
pools: {{cpu: {{concurrency: 1}}}}
prices:
  sim: {{input_per_1k: 0.0005, output_per_1k: 0.0015}}
spend:
  limits: {{"tenant:*": {{amount: 1000000, window: day}}}}
gateway:
  models:
    chat:
      - {{name: sim, base_url: "http://127.0.0.1:{sim_port}/v1", model: sim-bench,
         max_connections: 128}}
  limits:
    default: {{requests_per_s: 1000000, burst: 1000000, tokens_per_min: 1000000000}}
  cache: {{enabled: {cache}, ttl_s: 60, max_entries: {cache_entries}}}
  slo: {{p95_ms: 1000, error_rate: 0.5, policy: fail_closed}}
"""
WORKFLOW = "name: noop\nsteps: [{name: keep, pool: cpu, uses: noop}]\n"
# Each request carries its own seed, so none is answered from Sluice's cache; the simulator
# answers the one question from its own answer cache, so it stays as cheap as it can be.
WRK_LUA = r"""
local threads = 0
setup = function(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
init = function(args)
  model = args[1]
  headers = {["content-type"] = "application/json", ["authorization"] = "Bearer " .. args[2]}
  counter = 0
end
request = function()
  counter = counter + 1
  local body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"QUESTION"}],'
    .. '"seed":' .. (tid * 1000000000 + counter) .. '}'
  return wrk.format("POST", "/v1/chat/completions", headers, body)
end
""".replace("QUESTION", QUESTION)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], headers: dict[str, str]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def _body(model: str, seed: int) -> bytes:
    return orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": QUESTION}], "seed": seed}
    )


def serve_sluice(
    tmp: Path, sim_port: int, cache_entries: int = 10_000
) -> tuple[subprocess.Popen[bytes], int, str]:
    """Write the app, create an API key, start ``sluice serve``; its process, port and key."""
    app = tmp / "app"
    (app / "workflows").mkdir(parents=True)
    (app / "sluice.yaml").write_text(
        textwrap.dedent(
            CONFIG.format(
                sim_port=sim_port,
                cache="true" if cache_entries else "false",
                cache_entries=max(1, cache_entries),
            )
        )
    )
    (app / "workflows" / "noop.yaml").write_text(WORKFLOW)
    key = subprocess.run(
        [str(SLUICE), "apikey", "create", "--tenant", "bench", "--app", str(app)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [str(SLUICE), "serve", str(app), "--port", str(port), "--no-workers",
         "--limit-concurrency", "4000"],
    )  # fmt: skip
    _wait_ready(f"http://127.0.0.1:{port}/v1/models", proc, {"authorization": f"Bearer {key}"})
    return proc, port, key


def wrk(port: int, script: Path, model: str, key: str, seconds: int) -> float:
    """Requests per second wrk completes with 64 connections; every answer must be a 200."""
    out = subprocess.run(
        [shutil.which("wrk") or "wrk", "-t2", "-c64", f"-d{seconds}s", "-s", str(script),
         f"http://127.0.0.1:{port}", "--", model, key],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"cannot read wrk output:\n{out}")
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if refused:
        raise SystemExit(f"{refused.group(1)} requests were refused:\n{out}")
    return float(match.group(1))


async def paced(
    targets: list[tuple[str, str]], key: str, rate: float, seconds: float
) -> list[list[float]]:
    """Latencies (ms) per target of requests sent at ``rate`` per second to each ``(url,
    model)``, interleaved evenly: every target meets the same moments of a shared machine."""
    latencies: list[list[float]] = [[] for _ in targets]
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    total = int(rate * seconds)
    tag = time.monotonic_ns()
    connector = aiohttp.TCPConnector(limit=1024)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        # A few requests first, so connections are open and every code path has run once.
        for url, model in targets:
            for i in range(50):
                async with session.post(url, data=_body(model, -i - 1 - tag)) as response:
                    await response.read()

        async def one(i: int, target: int) -> None:
            url, model = targets[target]
            body = _body(model, tag + i)
            started = time.perf_counter()
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"{url} answered {response.status}: {await response.text()}")
            latencies[target].append((time.perf_counter() - started) * 1000)

        start = time.perf_counter()
        tasks = []
        step = 1.0 / (rate * len(targets))
        for i in range(total * len(targets)):
            await asyncio.sleep(max(0.0, start + i * step - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, i % len(targets))))
        await asyncio.gather(*tasks)
    return latencies


def quantiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99."""
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[98]


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument(
        "--cache-entries", type=int, default=10_000, help="response cache size; 0 turns it off"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk; `make bench` does it)")
    print(__doc__.splitlines()[0])
    print(f"{os.cpu_count()} cores; {args.seconds} s per run, {args.rounds} rounds, latency at"
          f" {args.rate:g} requests/s, response cache of {args.cache_entries} entries"
          " (every request a miss)")  # fmt: skip
    sim_port = free_port()
    sim = start_simulator(sim_port)
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            script = tmp / "chat.lua"
            script.write_text(WRK_LUA)
            proc, port, key = serve_sluice(tmp, sim_port, args.cache_entries)
            try:
                figures = run(args, sim_port, port, key, script)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    print(json.dumps(figures))


def run(
    args: argparse.Namespace, sim_port: int, port: int, key: str, script: Path
) -> dict[str, float]:
    """The rounds: max rate and paced latency, direct and through Sluice, alternating."""
    direct_url = f"http://127.0.0.1:{sim_port}/v1/chat/completions"
    sluice_url = f"http://127.0.0.1:{port}/v1/chat/completions"
    rows = []
    for round_ in range(args.rounds):
        direct_rps = wrk(sim_port, script, "sim-bench", "none", args.seconds)
        sluice_rps = wrk(port, script, "chat", key, args.seconds)
        pair = [(direct_url, "sim-bench"), (sluice_url, "chat")]
        lat_direct, lat_through = asyncio.run(paced(pair, key, args.rate, args.seconds))
        direct, through = quantiles(lat_direct), quantiles(lat_through)
        rows.append((direct_rps, sluice_rps, *direct, *through))
        print(f"  round {round_ + 1}: max rate direct {direct_rps:7.0f}/s, through Sluice"
              f" {sluice_rps:7.0f}/s (ratio {sluice_rps / direct_rps:.2f}) | at {args.rate:g}/s:"
              f" direct p50 {direct[0]:.2f} ms p99 {direct[1]:.2f} ms, through Sluice"
              f" p50 {through[0]:.2f} ms p99 {through[1]:.2f} ms, added p50"
              f" {through[0] - direct[0]:.2f} ms p99 {through[1] - direct[1]:.2f} ms")  # fmt: skip
    med = statistics.median
    direct_rps = med(r[0] for r in rows)
    sluice_rps = med(r[1] for r in rows)
    added_p50 = med(r[4] - r[2] for r in rows)
    added_p99 = med(r[5] - r[3] for r in rows)
    print(f"median: max rate through Sluice {sluice_rps:.0f}/s"
          f" ({min(r[1] for r in rows):.0f}-{max(r[1] for r in rows):.0f}), direct"
          f" {direct_rps:.0f}/s, ratio {sluice_rps / direct_rps:.2f}; at {args.rate:g}/s direct"
          f" p50 {med(r[2] for r in rows):.2f} ms p99 {med(r[3] for r in rows):.2f} ms, added p50"
          f" {added_p50:.2f} ms (target < 1), added p99 {added_p99:.2f} ms"
          " (target < 5)")  # fmt: skip
    return {
        "added_p50_ms": round(added_p50, 3),
        "added_p99_ms": round(added_p99, 3),
        "max_rps": round(sluice_rps, 1),
        "direct_max_rps": round(direct_rps, 1),
    }


if __name__ == "__main__":
    main()
