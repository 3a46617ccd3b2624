"""Scale-out: a no-op three-step workflow on PostgreSQL with 1, 2 and 4 worker processes.

For each worker count: a fresh schema, N ``sluice worker`` processes (every pool, concurrency
64 each by default), and this process feeding events straight into the store with 64 concurrent
submitters (as ``sluice serve --no-workers`` gateways would, through group commit). Events per
second runs from the first submit until every event is done. Beside it, PostgreSQL's CPU
(utime + stime of every ``postgres`` process, from /proc) per second of wall time, the CPU
per event of PostgreSQL, of the workers and of the feeding process (capacity planning), and the
embedded SQLite figure measured in the same run by ``bench/runtime.py`` (everything in one
process). The last line is one JSON object.

    .venv/bin/python bench/scale.py [--events 5000] [--workers 1 2 4] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType

import asyncpg

from sluice.config import load_settings
from sluice.store.base import NewEvent
from sluice.store.postgres import PostgresStore
from sluice.store.postgres_schema import drop_schema
from sluice.workflow.registry import WorkflowRegistry

POSTGRES_URL = os.environ.get("SLUICE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CONFIG = """
pools:
  p0: {concurrency: %(c)d, queue_limit: 1000000}
  p1: {concurrency: %(c)d, queue_limit: 1000000}
  p2: {concurrency: %(c)d, queue_limit: 1000000}
runtime: {poll_ms: 50}
"""
WORKFLOW = """
name: noop3
budget_ms: 600000
input_schema: {type: object}
steps:
  - {name: s0, pool: p0, uses: noop}
  - {name: s1, pool: p1, uses: noop}
  - {name: s2, pool: p2, uses: noop}
"""
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int | str) -> float:
    """CPU seconds (utime + stime) used so far by one process; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _postgres_cpu_s() -> float:
    """CPU seconds used so far by every process named ``postgres`` (server and backends)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name == "postgres" or name.startswith("postgres:"):
            total += _cpu_s(pid)
    return total


def _event(i: int, version: str) -> NewEvent:
    now = time.time()
    return NewEvent(f"e{i:07}", "noop3", version, "t", b'{"i": %d}' % i, "p0", now, now + 600)


def _app_dir(tmp: Path, concurrency: int) -> Path:
    (tmp / "workflows").mkdir(parents=True)
    (tmp / "sluice.yaml").write_text(CONFIG % {"c": concurrency})
    (tmp / "workflows" / "noop3.yaml").write_text(WORKFLOW)
    return tmp


async def run_postgres(
    workers: int, events: int, submitters: int = 64, concurrency: int = 64
) -> dict[str, float]:
    """Events per second through ``workers`` worker processes, and PostgreSQL's CPU share."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={schema}"
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = _app_dir(Path(tmp), concurrency)
        settings = load_settings(app_dir, environ={})
        assert settings.workflows_dir is not None
        version = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools)
        wf_version = version.get("noop3").version
        store = PostgresStore(url, listen=False)
        await store.open()
        env = {**os.environ, "SLUICE_STORE": url}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluice",
                "worker",
                str(app_dir),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
        try:
            while await conn.fetchval("SELECT count(*) FROM owners") < workers:  # noqa: ASYNC110 - workers start elsewhere
                await asyncio.sleep(0.1)
            todo = iter(range(events))

            async def submitter() -> None:
                for i in todo:
                    await store.insert_event(_event(i, wf_version))

            workers_cpu0 = sum(_cpu_s(p.pid) for p in procs)
            feeder0 = time.process_time()
            cpu0, start = _postgres_cpu_s(), time.perf_counter()
            await asyncio.gather(*(submitter() for _ in range(submitters)))
            while True:
                done = await conn.fetchval("SELECT count(*) FROM events WHERE state = 'done'")
                if done >= events:
                    break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - start
            cpu = _postgres_cpu_s() - cpu0
            workers_cpu = sum(_cpu_s(p.pid) for p in procs) - workers_cpu0
            feeder_cpu = time.process_time() - feeder0
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            await store.aclose()
            await drop_schema(conn, schema)
            await conn.close()
    return {
        "events_per_s": events / elapsed,
        "postgres_cores": cpu / elapsed,
        "postgres_ms_per_event": 1000 * cpu / events,
        "worker_ms_per_event": 1000 * workers_cpu / events,
        "feeder_ms_per_event": 1000 * feeder_cpu / events,
    }


def _sqlite_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_runtime", Path(__file__).with_name("runtime.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Run the benchmark and print the figures (medians of ``--repeat`` runs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64, help="per pool and worker")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"scale benchmark: {args.events} events x {args.repeat} runs, {cores} cores")
    sqlite_runs = []
    pg_runs: dict[int, list[dict[str, float]]] = {n: [] for n in args.workers}
    sqlite_bench = _sqlite_bench()
    for n in range(args.repeat):
        sqlite = asyncio.run(sqlite_bench.run_sluice(args.events))["events_per_s"]
        sqlite_runs.append(sqlite)
        print(f"  run {n + 1}: SQLite embedded (one process) {sqlite:8.0f} events/s")
        for workers in args.workers:
            result = asyncio.run(run_postgres(workers, args.events, concurrency=args.concurrency))
            pg_runs[workers].append(result)
            print(
                f"  run {n + 1}: PostgreSQL, {workers} worker process(es)"
                f" {result['events_per_s']:8.0f} events/s; postgres used"
                f" {result['postgres_cores']:.2f} cores"
                f" ({100 * result['postgres_cores'] / cores:.0f}% of the machine); CPU per event:"
                f" postgres {result['postgres_ms_per_event']:.2f} ms,"
                f" workers {result['worker_ms_per_event']:.2f} ms,"
                f" ingress {result['feeder_ms_per_event']:.2f} ms"
            )
    sqlite_med = statistics.median(sqlite_runs)
    pg_med = {
        str(w): round(statistics.median(r["events_per_s"] for r in runs), 1)
        for w, runs in pg_runs.items()
    }
    share = {
        str(w): round(statistics.median(r["postgres_cores"] for r in runs) / cores, 3)
        for w, runs in pg_runs.items()
    }
    print(f"median: SQLite {sqlite_med:.0f} events/s; PostgreSQL {pg_med} events/s")
    print(f"PostgreSQL CPU share of the machine: {share}")
    print(
        json.dumps(
            {
                "sqlite_events_per_s": round(sqlite_med, 1),
                "postgres_events_per_s": pg_med,
            }
        )
    )


if __name__ == "__main__":
    main()
