"""Where a webhook's time goes: py-spy samples of one ingress process under the bench's load.

Serves the app of ``bench/ingress.py`` (``serve --no-workers``), warms it, then samples it with
py-spy (``record -r 250 -f raw -t``, every thread) while wrk sends distinct signed deliveries.
Each thread's CPU time (from /proc) over the run divided by the requests answered gives its CPU
cost of one request; the event loop's thread is split by each stage's share of that thread's
samples. A sample is charged to the innermost frame that matches a stage, so nested work (the
masker inside the accept call) is counted once, where it runs. The other threads (the SQLite
writer and reader) are listed whole, with their own CPU time: their samples would overstate
them, as py-spy counts a thread waiting for the GIL or in ``fsync`` as busy.

    .venv/bin/pip install py-spy   # not a dependency of the project
    .venv/bin/python bench/ingress_profile.py [--seconds 8]

Linux only (/proc); py-spy needs permission to read the server's memory (root, or ptrace).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingress as bench  # the sibling benchmark, importable once its directory is on the path

#: Stages of a request, each a pattern on a sampled frame; the first pattern that matches the
#: innermost matching frame names the stage.
STAGES = (
    ("signature (HMAC-SHA256)", r"WebhookVerifier\.verify|signatures\.py|signing\.py"),
    ("PII masking", r"PiiMasker|guard/pii|recognizers|phones|ip_addresses|_Masking\.apply"),
    ("encryption (AES-GCM)", r"AesGcmCodec|crypto\.py|_encode_event"),
    ("JSON Schema", r"Acceptor\.check|jsonschema|_shape_and_schema|check_input"),
    ("mapping", r"SourceMapping|mapping\.py"),
    ("JSON parse and shape limits", r"read_json|shape_problem"),
    ("idempotency (hash, recent receipts)", r"_claim\b|_recent_hit|_remember|hashlib"),
    ("rate limit (KV token bucket)", r"_limit\b|limiter|ratelimit|kv/"),
    ("admission", r"\.admit\b|queue_depth"),
    ("tracing (spans, context)", r"tracing\.py|Telemetry\.|LocalSpan|LocalTracer|opentelemetry"
     r"|trace/|context/__init__|sink\.py"),
    ("metrics", r"prometheus_client|metrics\.py"),
    ("event creation (ids, JSON)", r"Acceptor\.event|new_event|ids\.py"),
    ("store write (queue, future)", r"insert_event|sqlite_writer|Acceptor\.commit|Runtime\.accept"),
    ("header rules", r"check_single"),
    ("body read", r"read_body|_read_raw_body|Request\.stream|Request\.body"),
    ("response (build and send)", r"Response\.|responses\.py|send_with_id|_send\b|sender\b"
     r"|RequestResponseCycle\.send|receipt_response"),
    ("Starlette (middleware, router, request)", r"starlette/"),
    ("correlation middleware", r"CorrelationMiddleware"),
    ("ingress control flow", r"ingress/intake\.py|ingress/gateway\.py|ingress/http\.py"
     r"|Acceptor\.take"),
    ("uvicorn HTTP protocol (httptools)", r"uvicorn/|ingress/server\.py|httptools"),
    ("event loop (uvloop)", r"runners\.py|asyncio/|uvloop"),
)  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    return _ticks(f"/proc/{pid}/stat") / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User and system CPU time of each thread of process ``pid`` so far, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = _ticks(f"/proc/{pid}/task/{tid}/stat") / os.sysconf("SC_CLK_TCK")
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return out


def _ticks(stat: str) -> int:
    with open(stat) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def write_calls(pid: int) -> int:
    """Write system calls of process ``pid`` so far (socket sends, the database's writes)."""
    with open(f"/proc/{pid}/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("syscw:"))


def thread_names(raw: Path) -> dict[int, str]:
    """Thread id to name, from py-spy's frames (``thread (1234): MainThread``)."""
    names = {}
    for line in raw.read_text().splitlines():
        head = line.split(";", 1)[0]
        found = re.match(r"thread \((\d+)\): (.*)", head)
        if found:
            names[int(found.group(1))] = found.group(2)
    return names


def split(raw: Path) -> tuple[collections.Counter[str], int]:
    """Samples per stage of the event loop's thread, and their total."""
    stages = [(name, re.compile(pattern)) for name, pattern in STAGES]
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            continue
        total += int(n)
        for frame in reversed(frames[1:]):
            hit = next((name for name, rx in stages if rx.search(frame)), None)
            if hit is not None:
                counts[hit] += int(n)
                break
        else:
            counts["other"] += int(n)
    return counts, total


def main() -> None:
    """Run the profile and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw samples to this file")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "hooks.lua"
        script.write_text(bench.WRK_LUA)
        proc, port = bench._serve_sluice(tmp / "app")
        try:
            warm, load = tmp / "warm.tsv", tmp / "load.tsv"
            bench._write_requests(warm, bench._tickets(20_000))
            bench._wrk(port, script, warm, 2)
            bench._write_requests(load, bench._tickets(max(60_000, 8_000 * args.seconds)))
            raw = tmp / "samples.txt"
            sampler = subprocess.Popen(
                [spy, "record", "-r", "250", "-f", "raw", "-t", "-o", str(raw),
                 "-d", str(args.seconds), "-p", str(proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)  # py-spy attaches
            cpu0, threads0 = cpu_seconds(proc.pid), thread_cpu_seconds(proc.pid)
            writes0 = write_calls(proc.pid)
            rate = bench._wrk(port, script, load, args.seconds)
            cpu, threads1 = cpu_seconds(proc.pid) - cpu0, thread_cpu_seconds(proc.pid)
            writes = write_calls(proc.pid) - writes0
            sampler.wait()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        requests = rate * args.seconds
        per_request_us = cpu / requests * 1e6
        counts, total = split(raw)
        names = thread_names(raw)
        if args.keep:
            shutil.copy(raw, args.keep)
    # Each thread's CPU a request; threads py-spy never saw running Python are summed apart.
    by_thread: collections.Counter[str] = collections.Counter()
    for tid, seconds in threads1.items():
        name = names.get(tid, "other threads (no Python frames)")
        by_thread[name] += (seconds - threads0.get(tid, 0.0)) / requests * 1e6
    loop_us = by_thread.pop("MainThread", 0.0)
    print(f"{rate:.0f} accepted/s; process CPU {cpu:.2f} s in {args.seconds} s:"
          f" {per_request_us:.0f} µs a request ({total} samples of the loop's thread)")  # fmt: skip
    print(f"write system calls: {writes / requests:.2f} a request")
    print("| stage | µs a request | share of the thread's samples |")
    print("|---|---|---|")
    for name, n in counts.most_common():
        print(f"| {name} | {n / total * loop_us:.0f} | {n / total:.1%} |")
    print(f"| **event loop's thread** | **{loop_us:.0f}** | |")
    for name, us in by_thread.most_common():
        print(f"| thread {name} | {us:.0f} | |")
    print(f"| **process** | **{per_request_us:.0f}** | |")


if __name__ == "__main__":
    main()
