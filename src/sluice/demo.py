"""The README's demo: the triage app on BANKING77, served for real and replayed over HTTP.

``python -m sluice.demo [--app DIR] [--tickets N] [--rate R]`` trains the models that are
missing, builds the retrieval index, starts ``sluice serve`` on a free port with a fresh store,
replays tickets from the app's replay split (with repeats, as real traffic has) at the given
rate with a progress bar, and ends with a report: accuracy, macro-F1, escalation rate, cache
hit rate, end-to-end latency percentiles and cost per 1,000 tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from sluice.examples import working_copy
from sluice.models.metrics import accuracy, macro_f1, percentile
from sluice.testing import free_port, wait_ready

SLUICE = [sys.executable, "-m", "sluice"]


def _bar(done: int, total: int, started: float, width: int = 30) -> str:
    filled = int(width * done / max(total, 1))
    rate = done / max(time.perf_counter() - started, 1e-9)
    return f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {rate:6.0f}/s"


def ticket_stream(path: Path, n: int, repeat_share: float, seed: int = 7) -> list[dict[str, str]]:
    """``n`` tickets from a ``text,category`` CSV; ``repeat_share`` of them repeat earlier ones."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(seed)
    rng.shuffle(rows)
    stream: list[dict[str, str]] = []
    fresh = iter(rows * (n // max(len(rows), 1) + 1))
    for _ in range(n):
        if stream and rng.random() < repeat_share:
            stream.append(rng.choice(stream))
        else:
            stream.append(next(fresh))
    return stream


async def replay(
    client: httpx.AsyncClient, stream: list[dict[str, str]], rate: float
) -> tuple[list[tuple[dict[str, str], str]], int]:
    """Send the stream at ``rate`` per second; return (ticket, event id) pairs and refusals."""
    accepted: list[tuple[dict[str, str], str]] = []
    refused = 0
    limit = asyncio.Semaphore(256)
    started = time.perf_counter()

    async def send(ticket: dict[str, str]) -> None:
        nonlocal refused
        async with limit:
            resp = await client.post("/v1/workflows/triage/runs", json={"text": ticket["text"]})
        if resp.status_code == 202:
            accepted.append((ticket, resp.json()["event_id"]))
        else:
            refused += 1

    tasks = []
    for i, ticket in enumerate(stream):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(send(ticket)))
        if i % 50 == 0:
            print(_bar(i, len(stream), started), end="", flush=True)
    await asyncio.gather(*tasks)
    print(_bar(len(stream), len(stream), started))
    return accepted, refused


async def collect(
    client: httpx.AsyncClient, accepted: list[tuple[dict[str, str], str]]
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Wait for every accepted run to finish and read it back."""
    limit = asyncio.Semaphore(64)

    async def one(ticket: dict[str, str], event_id: str) -> tuple[dict[str, str], dict[str, Any]]:
        async with limit:
            for _ in range(600):
                run: dict[str, Any] = (await client.get(f"/v1/runs/{event_id}")).json()
                if run["status"] != "accepted":
                    return ticket, run
                await asyncio.sleep(0.1)
        return ticket, run

    return await asyncio.gather(*(one(t, e) for t, e in accepted))


def report(
    runs: list[tuple[dict[str, str], dict[str, Any]]], refused: int, status: dict[str, Any]
) -> bool:
    """Print the report; True when every accepted ticket finished."""
    done = [(t, r) for t, r in runs if r["status"] == "done"]
    gold = [t["category"] for t, _ in done]
    predicted = [r["result"].get("intent") for _, r in done]
    latency = [(r["finished_at"] - r["created_at"]) * 1000 for _, r in done]
    cost = sum(float(r["result"].get("cost", 0.0)) for _, r in done)
    escalated = sum(bool(r["result"].get("escalated")) for _, r in done)
    routes = Counter(r["result"]["route"]["priority"] for _, r in done)
    caches = status.get("caches", {})
    print("\nreport")
    print(f"  tickets        {len(runs)} accepted, {refused} refused, {len(done)} done,"
          f" {sum(r['status'] == 'dead' for _, r in runs)} dead")  # fmt: skip
    if done:
        print(f"  accuracy       {accuracy(predicted, gold):.4f}")
        print(f"  macro-F1       {macro_f1(predicted, gold):.4f}")
        print(f"  escalation     {escalated / len(done):.3f} of tickets asked the large model")
        for name, stats in caches.items():
            print(f"  cache          {name}: hit rate {stats['hit_rate']:.3f}"
                  f" ({int(stats['hits'])} hits, {int(stats['misses'])} misses)")  # fmt: skip
        p50, p95, p99 = (percentile(latency, q) for q in (50, 95, 99))
        print(f"  latency ms     p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f} (accept to delivered)")
        print(f"  cost           {cost / len(done) * 1000:.4f} per 1,000 tickets")
        print(f"  routing        {dict(routes)}")
        for line in draft_lines([r["result"] for _, r in done]):
            print(f"  {line}")
        ticket, run = done[0]
        print(f"  example        {ticket['text']!r} -> {run['result']['intent']}"
              f" ({run['result']['route']['queue']})")  # fmt: skip
    return len(done) == len(runs)


def draft_lines(results: list[dict[str, Any]]) -> list[str]:
    """The report's lines on drafted replies, from finished runs' results: the share needing an
    agent's review and, when a model wrote drafts (``generated.draft.model``), the share it
    wrote and its cost per 1,000 tickets (the local fallback's drafts cost nothing)."""
    drafts: list[dict[str, Any]] = [r["draft"] for r in results if isinstance(r.get("draft"), dict)]
    if not drafts:
        return []
    review = sum(bool(d.get("needs_review")) for d in drafts) / len(drafts)
    lines = [f"drafts         {review:.3f} need review"]
    made = [(r.get("generated") or {}).get("draft") or {} for r in results if r.get("draft")]
    generated = [m for m in made if m.get("model")]
    if generated:
        cost = sum(float(m.get("cost", 0.0)) for m in made)
        fallback = sum(bool(m.get("fallback")) for m in made)
        lines.append(
            f"LLM drafts     {len(generated) / len(drafts):.3f} written by the LLM"
            f" ({fallback} local fallbacks), {cost / len(drafts) * 1000:.4f} per 1,000 tickets"
        )
    return lines


async def drive(url: str, key: str, proc: subprocess.Popen[bytes], args: argparse.Namespace) -> int:
    """Replay tickets against the running server and report."""
    auth = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=auth, limits=limits) as client:
        print("waiting for the server (models and index warm up before it is ready)")
        await wait_ready(client, proc, timeout_s=120)
        stream = ticket_stream(args.app / "data" / "replay.csv", args.tickets, args.repeats)
        print(f"replaying {len(stream)} tickets at {args.rate:.0f}/s"
              f" ({args.repeats:.0%} repeats)")  # fmt: skip
        accepted, refused = await replay(client, stream, args.rate)
        runs = await collect(client, accepted)
        status = (await client.get("/v1/status")).json()
    return 0 if report(runs, refused, status) else 1


def main() -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # From a source checkout the repository's examples/triage; from a wheel, a copy of the
    # packaged example in the user's cache directory (training writes models into the app).
    parser.add_argument("--app", type=Path, default=None)
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--repeats", type=float, default=0.3)
    args = parser.parse_args()
    if args.app is None:
        args.app = working_copy("triage")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print(f"1/4 training what is missing ({args.app})")
    subprocess.run([*SLUICE, "train", str(args.app)], env=env, check=True)
    print("2/4 building the retrieval index")
    subprocess.run([*SLUICE, "index", "build", str(args.app)], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        env["SLUICE_STORE"] = f"sqlite:///{Path(tmp) / 'demo.db'}"
        key = subprocess.run(
            # An operator key: the closing report reads the caches and breakers in /v1/status.
            [*SLUICE, "apikey", "create", "--tenant", "demo", "--role", "runner", "--role",
             "operator", "--app", str(args.app)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        port = free_port()
        print(f"3/4 starting sluice serve on port {port} (a fresh store in {tmp})")
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*SLUICE, "serve", str(args.app), "--port", str(port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            print("4/4 replaying tickets over HTTP")
            code = asyncio.run(drive(f"http://127.0.0.1:{port}", key, proc, args))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        if code:
            print(log.read_text()[-3000:])
    raise SystemExit(code)


if __name__ == "__main__":
    main()
