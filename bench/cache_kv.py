"""What one cache lookup costs on the KV backend: Redis up, killed, or hung; breaker on or off.

Every scenario times ``--lookups`` sequential ``ResponseCache.get`` calls of one key in this
process, after a warm-up (timed from the first call where the store fails), and reports the
median, p99 and max per lookup:

- ``memory``: the in-process LRU (the baseline, measured in the same run);
- ``redis``: the KV backend on a private ``redis-server`` (hits);
- ``killed``: the same after SIGKILL, with the cache's breaker (the shipped setting) and with a
  breaker that never opens (what a plain client would pay);
- ``hung``: a TCP listener that accepts and never answers (a stalled Redis), breaker on and
  off. Without the breaker every lookup waits for the backend's timeout; with it, only the
  first few do. The breaker-off run makes at most ``--hung-lookups`` calls, it is slow.

    .venv/bin/python bench/cache_kv.py [--lookups 5000] [--hung-lookups 12]

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from sluice.cache.backend import CacheBackend, MemoryBackend
from sluice.cache.kv_backend import CACHE_BREAKER, KVBackend
from sluice.cache.response import ResponseCache
from sluice.kv.redis import RedisKV
from sluice.models.base import ModelResult, Usage
from sluice.models.metrics import percentile
from sluice.reliability.breaker import BreakerSettings, CircuitBreaker
from sluice.testing.redis_server import RedisServer
from sluice.testing.servers import free_port

#: A breaker that never opens: the "no breaker" baseline.
NEVER_OPENS = BreakerSettings(failure_threshold=10**9, error_rate=1.0, min_requests=10**9)

ANSWER = ModelResult(
    model="bench", output={"label": "card_arrival"}, label="card_arrival", confidence=0.9,
    usage=Usage(12, 3), cost=0.0001, latency_ms=5.0,
)  # fmt: skip


async def time_lookups(cache: ResponseCache, n: int) -> dict[str, float]:
    """Median and p99 (ms) of ``n`` sequential lookups of one key, and the hit rate."""
    samples = []
    hits = 0
    for _ in range(n):
        started = time.perf_counter()
        found = await cache.get("bench-key")
        samples.append((time.perf_counter() - started) * 1000)
        hits += found is not None
    return {
        "median_ms": round(percentile(samples, 50), 4),
        "p99_ms": round(percentile(samples, 99), 4),
        "max_ms": round(max(samples), 4),
        "hit_rate": round(hits / n, 4),
        "lookups": n,
    }


async def run(backend: CacheBackend, n: int, *, store: bool = True) -> dict[str, float]:
    """Store the key and warm up (when ``store``: a failing store is timed from its first
    call), then time ``n`` lookups."""
    cache = ResponseCache(backend, ttl_s=600)
    if store:
        await cache.put("bench-key", ANSWER)
        await time_lookups(cache, min(n, 50))
    return await time_lookups(cache, n)


@contextlib.asynccontextmanager
async def hung_store() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a stalled Redis."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    port = free_port()
    server = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        yield port
    finally:
        server.close()
        for writer in held:
            writer.close()


def kv_backend(kv: RedisKV, breaker: BreakerSettings) -> KVBackend:
    """The KV backend as shipped, with the given breaker settings."""
    return KVBackend(kv, name="bench", breaker=CircuitBreaker("cache:bench", breaker))


async def main(lookups: int, hung_lookups: int) -> dict[str, dict[str, float]]:
    """Every scenario's figures."""
    out: dict[str, dict[str, float]] = {}
    out["memory"] = await run(MemoryBackend(), lookups)
    with RedisServer() as redis:
        kv = RedisKV(redis.url, prefix="bench:")
        await kv.open()
        try:
            out["redis"] = await run(kv_backend(kv, CACHE_BREAKER), lookups)
            redis.kill()
            out["killed_breaker"] = await run(kv_backend(kv, CACHE_BREAKER), lookups, store=False)
            out["killed_no_breaker"] = await run(kv_backend(kv, NEVER_OPENS), lookups, store=False)
        finally:
            await kv.aclose()
    async with hung_store() as port:
        for name, settings, n in (
            ("hung_breaker", CACHE_BREAKER, lookups),
            ("hung_no_breaker", NEVER_OPENS, hung_lookups),
        ):
            kv = RedisKV(f"redis://127.0.0.1:{port}/0")
            try:
                backend = kv_backend(kv, settings)
                cache = ResponseCache(backend, ttl_s=600)
                out[name] = await time_lookups(cache, n)
            finally:
                await kv.aclose()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--hung-lookups", type=int, default=12)
    args = parser.parse_args()
    figures = asyncio.run(main(args.lookups, args.hung_lookups))
    base = figures["memory"]["median_ms"]
    print(f"{'scenario':20} {'median ms':>10} {'p99 ms':>10} {'max ms':>10} {'hit rate':>9}"
          f" {'x memory':>9}")  # fmt: skip
    for name, f in figures.items():
        ratio = f["median_ms"] / base if base else 0.0
        median, p99, worst, hit_rate = f["median_ms"], f["p99_ms"], f["max_ms"], f["hit_rate"]
        print(f"{name:20} {median:10.4f} {p99:10.4f} {worst:10.4f} {hit_rate:9.2f} {ratio:9.1f}")
    print(json.dumps(figures))
