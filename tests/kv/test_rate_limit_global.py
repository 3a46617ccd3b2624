"""A per-tenant rate limit of R/s holds across two processes that share Redis.

Two real processes take tokens from the same tenant's bucket as fast as they can for a few
seconds; together they never get more than the burst plus R per second of the time they
actually took tokens (the limit holds), and a stalled machine may only make them get fewer.
A second tenant's bucket is independent of the first.
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

async def main(url, prefix, seconds, rate, burst):
    kv = RedisKV(url, prefix=prefix, connect_timeout_s=10, timeout_s=10)
    await kv.open()
    print("ready", flush=True)  # imported and connected: the parent sends the start time
    start_at = float(sys.stdin.readline())
    counts = {"a": 0, "b": 0}
    span = [float("inf"), 0.0]  # the first and last take, wall clock
    async def hammer(tenant):
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        while time.time() < start_at + seconds:
            span[0] = min(span[0], time.time())
            grant = await kv.take(f"rate:{tenant}", rate, burst)
            span[1] = time.time()
            if grant.allowed:
                counts[tenant] += 1
            else:
                await asyncio.sleep(min(grant.retry_after, 0.002))
    await asyncio.gather(hammer("a"), hammer("a"), hammer("b"))
    await kv.aclose()
    print(counts["a"], counts["b"], span[0], span[1])

url, prefix, seconds, rate, burst = sys.argv[1:]
asyncio.run(main(url, prefix, float(seconds), float(rate), float(burst)))
"""


async def _cleanup(prefix: str) -> None:
    kv = RedisKV(REDIS_URL, prefix=prefix)
    await kv.delete_prefix()
    await kv.aclose()


def test_two_processes_share_one_limit() -> None:
    """Allowed takes across both processes never exceed burst + R x the seconds they took
    tokens in; both got a real share, and the second tenant had its own bucket."""
    prefix = new_prefix()
    args = [REDIS_URL, prefix, str(SECONDS), str(RATE), str(BURST)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:  # both interpreters up and connected, however long that took
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        start_at = time.time() + 0.2
        for proc in procs:  # to both before waiting on either
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at}\n")
            proc.stdin.flush()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        asyncio.run(_cleanup(prefix))
    assert all(p.returncode == 0 for p in procs)
    rows = [out.split() for out, _ in outputs]
    counts = [(int(r[0]), int(r[1])) for r in rows]
    took = max(float(r[3]) for r in rows) - min(float(r[2]) for r in rows)
    most = BURST + RATE * took  # the bucket cannot grant more, whatever the machine does
    planned = BURST + RATE * SECONDS
    for tenant in (0, 1):
        allowed = sum(c[tenant] for c in counts)
        assert allowed <= most * 1.01 + 1, (tenant, counts, most)  # 1%: clocks of two hosts
        assert allowed >= 0.5 * planned, (tenant, counts, planned)  # it really was limited
    # Both processes really competed for tenant a's tokens.
    assert all(c[0] > 0.1 * planned for c in counts)
