"""Relay throughput of pooled HTTP clients against the model simulator answering instantly.

Starts ``sluice simulate-model --p50-ms 0`` in a subprocess (uvicorn, one process), then keeps
``--concurrency`` requests in flight through each client for ``--seconds``, alternating the
clients for ``--rounds`` rounds and reporting the median requests per second of each:

- ``aiohttp``: one ``ClientSession`` over a ``TCPConnector(limit=concurrency)``;
- ``httpx``: one ``AsyncClient`` with ``Limits(max_connections=concurrency)``;
- ``sluice``: :class:`sluice.models.openai_client.OpenAIClient` (aiohttp plus request building,
  schema validation and usage parsing), to show what the client adds on top of the transport.

Run: ``.venv/bin/python bench/http_client.py`` (about 40 s). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from sluice.models.chat_model import label_schema
from sluice.models.openai_client import ClientSettings, JsonOutput, OpenAIClient
from sluice.models.splits import read_examples
from sluice.outbound.policy import EgressPolicy
from sluice.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples/triage/data/banking77/train.csv"
SLUICE = Path(sys.executable).with_name("sluice")

Send = Callable[[int], Awaitable[None]]


def start_simulator(port: int) -> subprocess.Popen[bytes]:
    """Start the simulator answering instantly, and wait until it answers."""
    command = [str(SLUICE), "simulate-model", "--port", str(port), "--p50-ms", "0"]
    command += ["--data", str(DATA), "--model", "sim-bench"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"simulator exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("simulator did not start within 60 s")


def requests(count: int) -> tuple[list[bytes], list[list[dict[str, str]]], JsonOutput]:
    """Request bodies (about 1 KB each) for ``count`` distinct BANKING77 texts."""
    examples = read_examples(DATA)[::97][:count]
    labels = sorted({e.label for e in read_examples(DATA)})[:12]
    output = JsonOutput(label_schema(labels), name="classification")
    messages = [[{"role": "user", "content": e.text}] for e in examples]
    bodies = [
        orjson.dumps(
            {
                "model": "sim-bench",
                "messages": m,
                "temperature": 0,
                "response_format": output.response_format(),
            }
        )
        for m in messages
    ]
    return bodies, messages, output


async def drive(send: Send, concurrency: int, seconds: float) -> float:
    """Keep ``concurrency`` requests in flight for ``seconds``; return completed requests/s."""
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await send(index)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - started)


async def bench(port: int, concurrency: int, seconds: float, rounds: int) -> dict[str, Any]:
    """Alternate the clients for ``rounds`` rounds; return the median of each."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    bodies, messages, output = requests(concurrency)
    headers = {"Content-Type": "application/json"}
    results: dict[str, list[float]] = {"aiohttp": [], "httpx": [], "sluice": []}

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        httpx.AsyncClient(limits=limits, timeout=30) as client,
        OpenAIClient(
            ClientSettings(f"http://127.0.0.1:{port}/v1", max_connections=concurrency),
            policy=EgressPolicy.loopback(),
        ) as ours,
    ):

        async def via_aiohttp(index: int) -> None:
            async with session.post(url, data=bodies[index], headers=headers) as response:
                assert response.status == 200
                orjson.loads(await response.read())

        async def via_httpx(index: int) -> None:
            response = await client.post(url, content=bodies[index], headers=headers)
            assert response.status_code == 200
            orjson.loads(response.content)

        async def via_sluice(index: int) -> None:
            await ours.chat("sim-bench", messages[index], output=output, params={"temperature": 0})

        sends: dict[str, Send] = {"aiohttp": via_aiohttp, "httpx": via_httpx, "sluice": via_sluice}
        for send in sends.values():  # warm pools and the simulator's answer cache
            await drive(send, concurrency, 1.0)
        for round_ in range(rounds):
            for name, send in sends.items():
                rate = await drive(send, concurrency, seconds)
                results[name].append(rate)
                print(f"round {round_ + 1} {name:8s} {rate:8.0f} req/s", flush=True)
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "rounds": rounds,
        "aiohttp_rps": round(medians["aiohttp"]),
        "httpx_rps": round(medians["httpx"]),
        "sluice_client_rps": round(medians["sluice"]),
        "aiohttp_over_httpx": round(medians["aiohttp"] / medians["httpx"], 2),
    }


def main() -> None:
    """Run the benchmark and print one JSON object last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    process = start_simulator(port)
    try:
        run = bench(port, args.concurrency, args.seconds, args.rounds)
        try:
            import uvloop  # the loop uvicorn, and so `sluice serve`, runs on

            result = uvloop.run(run)
            result["loop"] = "uvloop"
        except ImportError:
            result = asyncio.run(run)
            result["loop"] = "asyncio"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sim/stats", timeout=5) as response:
            result["simulator_requests"] = json.loads(response.read())["requests"]
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
