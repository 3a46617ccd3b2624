"""Ingress throughput: signed webhooks through the full path, beside a bare JSON endpoint.

The full path is everything a webhook meets: Standard Webhooks signature, rate limit,
idempotency key, mapping and JSON Schema, PII masking, AES-GCM encryption and the durable
SQLite write (synchronous=FULL) of the event and its first job. The ingress runs with
``--no-workers`` (an ingress process, as in a deployment), so the figure is what one ingress
process accepts. The baseline, measured in the same run with the same load generator, is a
bare Starlette endpoint that parses the JSON body with orjson and answers 202 (one process).

Maximum rate: wrk, 2 threads, 64 connections, every request a distinct signed delivery.
Latency: an open-loop generator at half the measured maximum (aiohttp), p50/p99.
Whole machine: ``serve --processes N`` (N = the cores, SO_REUSEPORT) under the same wrk load,
``machine_accepted_per_s``; on a machine with few cores wrk and the servers share them.
The last line is one JSON object: ``accepted_per_s``, ``bare_per_s`` and their ``ratio`` (one
process), ``p50_ms`` and ``p99_ms`` (at half the maximum), ``machine_accepted_per_s``.

    .venv/bin/python bench/ingress.py [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
import orjson

from sluice.outbound.signing import decode_secret, sign
from sluice.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
TICKETS = ROOT / "examples" / "triage" / "data" / "banking77" / "train.csv"
SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789").decode()
KEY = base64.b64encode(b"k" * 32).decode()
CONFIG = f"""
store: sqlite:///.sluice/ingress.db
pools: {{inference: {{concurrency: 4, queue_limit: 10000000}}}}
encryption: {{active: k1, keys: {{k1: {KEY}}}}}
rate_limits: {{default: {{rate: 1000000, burst: 1000000}}}}
sources:
  desk:
    workflow: tickets
    tenant: acme
    secrets: [{SECRET}]
    mapping:
      text: $.ticket.description
      email: {{path: $.requester.email, transform: lower}}
"""
WORKFLOW = """
name: tickets
input_schema:
  type: object
  required: [text]
  properties: {text: {type: string, minLength: 1, maxLength: 5000}, email: {type: string}}
pii: {fields: [text]}
steps: [{name: keep, pool: inference, uses: noop}]
"""
BARE = """
import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def hook(request):
    data = orjson.loads(await request.body())
    return Response(orjson.dumps({"event_id": "x", "status": "accepted", "n": len(data)}), 202,
                    media_type="application/json")

app = Starlette(routes=[Route("/v1/hooks/desk", hook, methods=["POST"])])
"""
# Each wrk thread sends its own share of the pre-signed deliveries (distinct webhook ids), so
# no request is answered from the idempotency cache.
WRK_LUA = r"""
local counter = 0
setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
local lines = {}
local n = 0
init = function(args)
  local k = 0
  for line in io.lines(args[1]) do
    if k % 2 == tid then
      n = n + 1
      lines[n] = line
    end
    k = k + 1
  end
end
local i = 0
request = function()
  i = i % n + 1
  local id, ts, sig, body = lines[i]:match("([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)")
  local headers = {}
  headers["content-type"] = "application/json"
  headers["webhook-id"] = id
  headers["webhook-timestamp"] = ts
  headers["webhook-signature"] = sig
  return wrk.format("POST", "/v1/hooks/desk", headers, body)
end
"""


def _tickets(n: int) -> list[bytes]:
    with TICKETS.open() as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    rng = random.Random(5)
    out = []
    for i in range(n):
        text = (
            f"{rng.choice(texts)} Reach me at user{i}@example.com or +44 20 7946 {i % 10000:04d}."
        )
        out.append(
            orjson.dumps({"ticket": {"description": text}, "requester": {"email": f"U{i}@X.IO"}})
        )
    return out


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} not ready")


def _wrk(port: int, script: Path, data: Path, seconds: int) -> float:
    out = subprocess.run(
        [shutil.which("wrk") or "wrk", "-t2", "-c64", f"-d{seconds}s", "-s", str(script), f"http://127.0.0.1:{port}",
         "--", str(data)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None:
        raise SystemExit(f"cannot read wrk output:\n{out}")
    if non2xx:
        raise SystemExit(f"{non2xx.group(1)} requests were refused:\n{out}")
    return float(match.group(1))


async def _paced_latency(
    port: int, bodies: list[bytes], rate: float, seconds: float
) -> list[float]:
    key = decode_secret(SECRET)
    latencies: list[float] = []
    total = int(rate * seconds)
    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=conn) as session:
        start = time.perf_counter()

        async def one(i: int) -> None:
            body = bodies[i % len(bodies)]
            stamp = int(time.time())
            msg_id = f"lat-{i}-{os.getpid()}-{start}"
            headers = {"content-type": "application/json", "webhook-id": msg_id,
                       "webhook-timestamp": str(stamp),
                       "webhook-signature": sign(key, msg_id, stamp, body)}  # fmt: skip
            t0 = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/v1/hooks/desk", data=body,
                                    headers=headers) as resp:  # fmt: skip
                await resp.read()
                if resp.status != 202:
                    raise SystemExit(f"latency run refused: {resp.status}")
            latencies.append((time.perf_counter() - t0) * 1000)

        tasks = []
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies


def _serve_sluice(tmp: Path, processes: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    app = tmp / "app"
    (app / "workflows").mkdir(parents=True)
    (app / "sluice.yaml").write_text(textwrap.dedent(CONFIG))
    (app / "workflows" / "tickets.yaml").write_text(textwrap.dedent(WORKFLOW))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice", "serve", str(app), "--port", str(port), "--no-workers",
         "--limit-concurrency", "2000", "--processes", str(processes)],
    )  # fmt: skip
    _wait_port(port, proc)
    time.sleep(0.5 * processes)  # the port opens before every process has started its app
    return proc, port


def _serve_bare(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    (tmp / "bare_app.py").write_text(BARE)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port), "--log-level",
         "warning", "--no-access-log"],
        cwd=tmp,
    )  # fmt: skip
    _wait_port(port, proc)
    return proc, port


def _write_requests(path: Path, bodies: list[bytes]) -> None:
    key = decode_secret(SECRET)
    stamp = int(time.time())
    with path.open("w") as fh:
        for i, body in enumerate(bodies):
            msg_id = f"{path.stem}-{i}"
            fh.write(f"{msg_id}\t{stamp}\t{sign(key, msg_id, stamp, body)}\t{body.decode()}\n")


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk; `make bench` does it)")
    print(__doc__.splitlines()[0])
    print(f"{os.cpu_count()} cores, {args.seconds} s per wrk run, {args.repeat} runs")
    # Enough distinct deliveries that wrk never repeats one within a run.
    bodies = _tickets(max(60_000, 8_000 * args.seconds))
    full, bare, p50s, p99s, machine = [], [], [], [], []
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "hooks.lua"
        script.write_text(WRK_LUA)
        for run in range(args.repeat):
            requests = tmp / f"requests-{run}.tsv"
            _write_requests(requests, bodies)
            proc, port = _serve_sluice(tmp / f"run{run}")
            try:
                rate = _wrk(port, script, requests, args.seconds)
                lat = asyncio.run(_paced_latency(port, bodies, 0.5 * rate, min(5, args.seconds)))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            requests = tmp / f"requests-{run}-machine.tsv"
            _write_requests(requests, bodies)
            mproc, mport = _serve_sluice(tmp / f"run{run}-machine", processes=cores)
            try:
                whole = _wrk(mport, script, requests, args.seconds)
            finally:
                mproc.terminate()
                mproc.wait(timeout=30)
            bproc, bport = _serve_bare(tmp)
            try:
                base = _wrk(bport, script, requests, args.seconds)
            finally:
                bproc.terminate()
                bproc.wait(timeout=30)
            q = statistics.quantiles(lat, n=100)
            full.append(rate)
            bare.append(base)
            p50s.append(q[49])
            p99s.append(q[98])
            machine.append(whole)
            print(f"  run {run + 1}: full path {rate:7.0f}/s | bare endpoint {base:7.0f}/s |"
                  f" ratio {rate / base:.2f} | at {0.5 * rate:.0f}/s: p50 {q[49]:.2f} ms"
                  f" p99 {q[98]:.2f} ms | {cores} processes {whole:7.0f}/s")  # fmt: skip
    med = statistics.median
    ratios = [f / b for f, b in zip(full, bare, strict=True)]
    print(f"median: full path {med(full):.0f}/s (spread {min(full):.0f}-{max(full):.0f}),"
          f" bare {med(bare):.0f}/s, ratio {med(full) / med(bare):.2f} (per run"
          f" {min(ratios):.2f}-{max(ratios):.2f}), p99 {med(p99s):.1f} ms"
          f" ({min(p99s):.1f}-{max(p99s):.1f}), {cores} processes {med(machine):.0f}/s"
          f" ({min(machine):.0f}-{max(machine):.0f})")  # fmt: skip
    print(json.dumps({
        "accepted_per_s": round(med(full), 1),
        "bare_per_s": round(med(bare), 1),
        "ratio": round(med(full) / med(bare), 3),
        "p50_ms": round(med(p50s), 3),
        "p99_ms": round(med(p99s), 3),
        "machine_accepted_per_s": round(med(machine), 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
