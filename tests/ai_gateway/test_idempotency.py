"""Idempotency keys on a KV: two key tables on one KV behave as two gateway processes do.

Run on the in-process KV and on real Redis (``SLUICE_TEST_REDIS``; a missing server fails
these tests rather than skipping them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sluice.ai_gateway.config import IdempotencySettings
from sluice.ai_gateway.idempotency import IdempotencyKeys, Lead
from sluice.errors import IdempotencyConflictError
from sluice.kv.base import KV
from sluice.kv.memory import MemoryKV
from tests.kv.conftest import new_prefix, patient_redis

SETTINGS = IdempotencySettings(ttl_s=60, max_entries=100, wait_s=5)


@pytest.fixture(params=["memory", "redis"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KV]:
    """An open, empty KV of each kind."""
    if request.param == "memory":
        async with MemoryKV() as impl:
            yield impl
        return
    redis_kv = patient_redis(new_prefix())
    await redis_kv.open()
    try:
        yield redis_kv
    finally:
        await redis_kv.delete_prefix()
        await redis_kv.aclose()


def keys_on(kv: KV) -> IdempotencyKeys:
    """A key table on ``kv`` (one per simulated process), reading every 10 ms."""
    return IdempotencyKeys(SETTINGS, kv, poll_s=0.01)


async def lead(keys: IdempotencyKeys, key: str = "k", body: bytes = b"{}") -> Lead:
    """Claim ``key`` and insist on leading."""
    claim = await keys.claim("acme", key, body)
    assert isinstance(claim, Lead)
    return claim


class TestAcrossProcesses:
    async def test_an_answer_is_replayed_by_the_other_process(self, kv: KV) -> None:
        """A key answered in one process is replayed in another, for the same tenant only."""
        here, there = keys_on(kv), keys_on(kv)
        first = await lead(here)
        await first.finish(b"answer")
        assert await there.claim("acme", "k", b"{}") == b"answer"
        assert isinstance(await there.claim("other", "k", b"{}"), Lead)

    async def test_another_body_is_a_conflict_everywhere(self, kv: KV) -> None:
        """The same key with another body is refused, running or answered."""
        here, there = keys_on(kv), keys_on(kv)
        first = await lead(here)
        with pytest.raises(IdempotencyConflictError, match="different request body"):
            await there.claim("acme", "k", b'{"other": 1}')
        await first.finish(b"answer")
        with pytest.raises(IdempotencyConflictError, match="different request body"):
            await there.claim("acme", "k", b'{"other": 1}')

    async def test_repeats_elsewhere_wait_for_the_running_leader(self, kv: KV) -> None:
        """Repeats in another process wait for the answer instead of running again."""
        here, there = keys_on(kv), keys_on(kv)
        first = await lead(here)
        repeats = [asyncio.create_task(there.claim("acme", "k", b"{}")) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert not any(r.done() for r in repeats)
        await first.finish(b"answer")
        assert await asyncio.gather(*repeats) == [b"answer"] * 3

    async def test_an_abandoned_key_is_led_again(self, kv: KV) -> None:
        """When the leader gives up, one waiting repeat leads in its place."""
        here, there = keys_on(kv), keys_on(kv)
        first = await lead(here)
        waiting = asyncio.create_task(there.claim("acme", "k", b"{}"))
        await asyncio.sleep(0.05)
        first.abandon()
        assert isinstance(await waiting, Lead)
        await here.aclose()

    async def test_a_dead_leaders_key_frees_after_its_lease(self, kv: KV) -> None:
        """A leader that never answers (its process died) holds the key only for its lease."""
        here, there = keys_on(kv), keys_on(kv)
        here.lease_s = there.lease_s = 0.3  # below wait_s only for this test
        await lead(here)
        assert isinstance(await there.claim("acme", "k", b"{}"), Lead)

    async def test_a_repeat_waits_at_most_wait_s(self, kv: KV) -> None:
        """A leader still running after wait_s: the repeat is told so, with a 409."""
        settings = IdempotencySettings(ttl_s=60, max_entries=100, wait_s=0.2)
        here = IdempotencyKeys(settings, kv, lease_s=30, poll_s=0.01)
        there = IdempotencyKeys(settings, kv, lease_s=30, poll_s=0.01)
        await lead(here)
        with pytest.raises(IdempotencyConflictError, match="still running"):
            await there.claim("acme", "k", b"{}")


class TestInProcess:
    async def test_repeats_here_are_woken_by_the_leader(self) -> None:
        """Without a KV the keys live in a private bounded KV; repeats wake at the answer."""
        keys = IdempotencyKeys(SETTINGS, poll_s=60)  # polling would never wake them in time
        first = await lead(keys)
        repeat = asyncio.create_task(keys.claim("acme", "k", b"{}"))
        await asyncio.sleep(0.01)
        await first.finish(b"answer")
        assert await asyncio.wait_for(repeat, 5) == b"answer"
        assert isinstance(keys.kv, MemoryKV)
        assert keys.kv.max_keys == SETTINGS.max_entries

    async def test_the_client_key_is_not_stored(self) -> None:
        """The KV holds a hash of the tenant and key, not the key a client sent."""
        keys = IdempotencyKeys(SETTINGS)
        first = await lead(keys, key="order-secret-42")
        await first.finish(b"answer")
        assert isinstance(keys.kv, MemoryKV)
        assert not any("order-secret-42" in k for k in keys.kv._data)
