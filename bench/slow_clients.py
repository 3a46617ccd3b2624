"""Valid clients beside 1,000 slow connections: latency and errors with and without them.

A real ``sluice serve --no-workers`` (default server limits) accepts API runs from a closed
loop of ``--concurrency`` keep-alive clients for ``--seconds``, first alone (the baseline),
then while ``--slow`` connections that sent a request line and one header, then nothing, are
held open from twenty loopback addresses (127.0.0.2-21) by a second process. The server
closes each after its header deadline (408); that process reopens it at once, as an attacker
would (the minimum held during the measurement is reported). Phases alternate
``--rounds`` times. Reported per phase: p50/p99 latency of valid requests and their error
rate (any answer but 202, or a transport error). The last line is one JSON object.

    .venv/bin/python bench/slow_clients.py [--seconds 5] [--slow 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from sluice.testing import free_port

CONFIG = """
store: sqlite:///.sluice/slow.db
pools: {cpu: {concurrency: 2, queue_limit: 10000000}}
rate_limits: {default: {rate: 1000000, burst: 1000000}}
"""
WORKFLOW = """
name: tickets
input_schema: {type: object, required: [text], properties: {text: {type: string}}}
steps: [{name: keep, pool: cpu, uses: noop}]
"""
SOURCES = [f"127.0.0.{2 + i}" for i in range(20)]
SLOW_REQUEST = b"POST /v1/workflows/tickets/runs HTTP/1.1\r\nHost: bench\r\n"


class Holder:
    """Keeps ``count`` slow connections open from a process of its own (so that its
    reconnects do not slow the loop that times the valid requests), reopening each one the
    server closes."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        context = multiprocessing.get_context("spawn")
        self._open = context.Value("i", 0)
        self._closed = context.Value("i", 0)
        self._process = context.Process(
            target=_hold, args=(port, count, self._open, self._closed), daemon=True
        )

    @property
    def open(self) -> int:
        """Connections held right now."""
        return int(self._open.value)

    @property
    def closed_by_server(self) -> int:
        """Connections the server has closed so far."""
        return int(self._closed.value)

    async def start(self) -> None:
        """Open every connection; return once all are held."""
        self._process.start()
        for _ in range(1200):
            if self.open >= self.count:
                return
            await asyncio.sleep(0.05)
        raise SystemExit(f"could only open {self.open} of {self.count} slow connections")

    async def stop(self) -> None:
        """Close them all (the process ends, and with it its sockets)."""
        self._process.terminate()
        await asyncio.to_thread(self._process.join, 30)


def _hold(port: int, count: int, opened: Any, closed: Any) -> None:
    """The holder process: ``count`` connections, each reopened when the server closes it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def one(source: str) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
            except OSError:
                await asyncio.sleep(0.1)
                continue
            opened.value += 1
            try:
                writer.write(SLOW_REQUEST)
                await writer.drain()
                await reader.read()  # until the server's 408 and close
            except OSError:
                pass
            finally:
                opened.value -= 1
                closed.value += 1
                writer.close()

    async def main() -> None:
        await asyncio.gather(*(one(SOURCES[i % len(SOURCES)]) for i in range(count)))

    asyncio.run(main())


async def valid_load(port: int, key: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """A closed loop of ``concurrency`` clients for ``seconds``: latencies and errors."""
    latencies: list[float] = []
    errors = 0
    headers = {"authorization": f"Bearer {key}"}
    end = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:

        async def client() -> None:
            nonlocal errors
            url = f"http://127.0.0.1:{port}/v1/workflows/tickets/runs"
            while time.perf_counter() < end:
                started = time.perf_counter()
                try:
                    async with session.post(url, json={"text": "my card is lost"}) as resp:
                        await resp.read()
                        ok = resp.status == 202
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                errors += not ok

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": errors}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p99 over every request of the phase's rounds, and the error rate."""
    latencies = sorted(x for run in runs for x in run["latencies"])
    errors = sum(run["errors"] for run in runs)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "p50_ms": round(cuts[49], 2),
        "p99_ms": round(cuts[98], 2),
        "error_rate": round(errors / len(latencies), 5),
    }


async def measure(port: int, key: str, args: argparse.Namespace) -> dict[str, Any]:
    """Alternate the two phases ``args.rounds`` times."""
    baseline, held = [], []
    held_min = args.slow
    closed = 0
    await valid_load(port, key, args.concurrency, 1.0)  # warm-up: every path has run once
    for _ in range(args.rounds):
        baseline.append(await valid_load(port, key, args.concurrency, args.seconds))
        holder = Holder(port, args.slow)
        await holder.start()

        async def watch(h: Holder = holder) -> None:
            nonlocal held_min
            while True:
                held_min = min(held_min, h.open)
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        held.append(await valid_load(port, key, args.concurrency, args.seconds))
        watcher.cancel()
        closed += holder.closed_by_server
        await holder.stop()
        await asyncio.sleep(1.0)  # the server notices the closes before the next baseline
    return {
        "baseline": summary(baseline),
        "held": {**summary(held), "slow_held_min": held_min, "slow_closed_by_server": closed},
    }


def serve(tmp: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    """``sluice serve --no-workers`` with the default limits, and an API key."""
    app = tmp / "app"
    (app / "workflows").mkdir(parents=True)
    (app / "sluice.yaml").write_text(textwrap.dedent(CONFIG))
    (app / "workflows" / "tickets.yaml").write_text(textwrap.dedent(WORKFLOW))
    sluice = [sys.executable, "-m", "sluice"]
    key = subprocess.run(
        [*sluice, "apikey", "create", "--tenant", "bench", "--app", str(app)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    proc = subprocess.Popen([*sluice, "serve", str(app), "--port", str(port), "--no-workers"])
    for _ in range(1200):
        if proc.poll() is not None:
            raise SystemExit(f"sluice serve exited with {proc.returncode}")
        if ready(port):
            return proc, port, key
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit("sluice serve did not become ready")


def ready(port: int) -> bool:
    """Whether ``/readyz`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--slow", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(__doc__.splitlines()[0])
    print(f"{os.cpu_count()} cores, {args.concurrency} valid clients, {args.slow} slow "
          f"connections, {args.seconds:g} s a phase, {args.rounds} rounds")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, key = serve(Path(tmp))
        try:
            result = asyncio.run(measure(port, key, args))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for phase in ("baseline", "held"):
        row = result[phase]
        print(f"{phase:>8}: {row['requests']} requests, p50 {row['p50_ms']} ms, "
              f"p99 {row['p99_ms']} ms, errors {row['error_rate']:.3%}")  # fmt: skip
    result["p99_ratio"] = round(result["held"]["p99_ms"] / result["baseline"]["p99_ms"], 2)
    print(f"p99 with {args.slow} slow connections held / without: {result['p99_ratio']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
