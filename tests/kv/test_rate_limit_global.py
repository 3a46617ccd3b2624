"""A per-tenant rate limit of R/s holds across two processes that share Redis.

Two real processes take tokens from the same tenant's bucket as fast as they can for a few
seconds; together they get the burst plus R per second, within 5%. A second tenant's bucket
is independent of the first.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from sluice.kv.redis import RedisKV
from tests.kv.conftest import REDIS_URL, new_prefix

RATE = 100.0
BURST = 5.0
SECONDS = 3.0

CLIENT = """
import asyncio, sys, time
from sluice.kv.redis import RedisKV

async def main(url, prefix, start_at, seconds, rate, burst):
    kv = RedisKV(url, prefix=prefix)
    counts = {"a": 0, "b": 0}
    async def hammer(tenant):
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        while time.time() < start_at + seconds:
            grant = await kv.take(f"rate:{tenant}", rate, burst)
            if grant.allowed:
                counts[tenant] += 1
            else:
                await asyncio.sleep(min(grant.retry_after, 0.002))
    await asyncio.gather(hammer("a"), hammer("a"), hammer("b"))
    await kv.aclose()
    print(counts["a"], counts["b"])

url, prefix, start_at, seconds, rate, burst = sys.argv[1:]
asyncio.run(main(url, prefix, float(start_at), float(seconds), float(rate), float(burst)))
"""


async def _cleanup(prefix: str) -> None:
    kv = RedisKV(REDIS_URL, prefix=prefix)
    await kv.delete_prefix()
    await kv.aclose()


def test_two_processes_share_one_limit_within_5_percent() -> None:
    """Allowed takes across both processes = burst + R x seconds, within 5%."""
    prefix = new_prefix()
    start_at = time.time() + 1.5  # both interpreters are up by then
    args = [REDIS_URL, prefix, str(start_at), str(SECONDS), str(RATE), str(BURST)]
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=30) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        asyncio.run(_cleanup(prefix))
    assert all(p.returncode == 0 for p in procs)
    counts = [tuple(map(int, out.split())) for out, _ in outputs]
    expected = BURST + RATE * SECONDS
    for tenant in (0, 1):
        allowed = sum(c[tenant] for c in counts)
        assert abs(allowed - expected) <= 0.05 * expected, (tenant, counts, expected)
    # Both processes really competed for tenant a's tokens.
    assert all(c[0] > 0.2 * expected for c in counts)
