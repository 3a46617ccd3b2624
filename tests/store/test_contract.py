"""The JobStore contract: durability of accepts, leases, effects once, reclaim, dead letters."""

from __future__ import annotations

import asyncio
import time

import pytest

from sluice.errors import NotFoundError, StoreError
from sluice.store.base import Completion, EventState, Job, JobStore, NewEvent


def _event(eid: str, pool: str = "p0", budget_s: float = 60.0) -> NewEvent:
    now = time.time()
    return NewEvent(eid, "wf", "1", "t1", b'{"x": 1}', pool, now, now + budget_s)


def _done(job: Job, output: bytes = b'{"y": 2}', next_pool: str | None = "p1") -> Completion:
    now = time.time()
    return Completion(job, f"s{job.step}", output, now, now, next_pool)


class TestAccept:
    async def test_event_and_first_job_are_written_together(self, store: JobStore) -> None:
        """An accepted event is readable and its first job is claimable."""
        await store.insert_event(_event("e1"))
        record = await store.get_event("e1")
        assert record.state is EventState.ACCEPTED
        assert record.input == b'{"x": 1}'
        assert (await store.queue_depths()) == {"p0": 1}
        jobs = await store.claim("p0", 10, "w1", 30)
        assert [(j.event_id, j.step, j.attempts, j.input) for j in jobs] == [
            ("e1", 0, 1, b'{"x": 1}')
        ]

    async def test_duplicate_event_id_is_refused(self, store: JobStore) -> None:
        """A second event with the same id is an error and changes nothing."""
        await store.insert_event(_event("dup"))
        with pytest.raises(StoreError, match="already exists"):
            await store.insert_event(_event("dup"))
        assert (await store.queue_depths()) == {"p0": 1}

    async def test_unknown_event(self, store: JobStore) -> None:
        """Reading an unknown id raises NotFoundError."""
        with pytest.raises(NotFoundError):
            await store.get_event("nope")


class TestClaim:
    async def test_a_job_is_leased_to_one_owner(self, store: JobStore) -> None:
        """Concurrent claimers never get the same job."""
        for i in range(50):
            await store.insert_event(_event(f"e{i:02}"))
        batches = await asyncio.gather(*(store.claim("p0", 7, f"w{i}", 30) for i in range(10)))
        ids = [j.event_id for batch in batches for j in batch]
        assert len(ids) == 50
        assert len(set(ids)) == 50

    async def test_claims_are_per_pool(self, store: JobStore) -> None:
        """A pool only sees its own jobs."""
        await store.insert_event(_event("a", pool="p0"))
        await store.insert_event(_event("b", pool="p9"))
        assert [j.event_id for j in await store.claim("p9", 10, "w", 30)] == ["b"]


class TestComplete:
    async def test_result_and_next_job_commit_together(self, store: JobStore) -> None:
        """Completing step 0 records its result and makes step 1 claimable with that input."""
        await store.insert_event(_event("e1"))
        (job,) = await store.claim("p0", 1, "w1", 30)
        assert await store.complete(_done(job)) is True
        (nxt,) = await store.claim("p1", 1, "w1", 30)
        assert (nxt.step, nxt.input) == (1, b'{"y": 2}')
        assert await store.complete(_done(nxt, b'{"z": 3}', next_pool=None)) is True
        record = await store.get_event("e1")
        assert record.state is EventState.DONE
        assert record.result == b'{"z": 3}'
        assert [s.name for s in record.steps] == ["s0", "s1"]

    async def test_a_rerun_has_no_second_effect(self, store: JobStore) -> None:
        """After a lost lease, the second completion of a step changes nothing."""
        await store.insert_event(_event("e1", budget_s=60))
        (first,) = await store.claim("p0", 1, "dead-worker", 0.01)
        await asyncio.sleep(0.05)
        assert await store.reclaim(stale_after_s=60) == 1
        (second,) = await store.claim("p0", 1, "live-worker", 30)
        assert second.attempts == 2
        assert await store.complete(_done(second)) is True
        (step1,) = await store.claim("p1", 1, "live-worker", 30)
        assert await store.complete(_done(step1, next_pool=None)) is True
        # The first worker wakes up and completes too: no second result, no second next job.
        assert await store.complete(_done(first, b'{"late": 1}')) is False
        assert await store.claim("p1", 10, "w", 30) == []
        record = await store.get_event("e1")
        assert [s.step for s in record.steps] == [0, 1]
        assert record.steps[0].output == b'{"y": 2}'


class TestFailures:
    async def test_retry_returns_the_job_later(self, store: JobStore) -> None:
        """A retried job is not claimable before its time, and is after."""
        await store.insert_event(_event("e1"))
        (job,) = await store.claim("p0", 1, "w", 30)
        await store.retry(job, time.time() + 0.2, "boom")
        assert await store.claim("p0", 1, "w", 30) == []
        await asyncio.sleep(0.25)
        (again,) = await store.claim("p0", 1, "w", 30)
        assert again.attempts == 2

    async def test_bury_and_replay(self, store: JobStore) -> None:
        """A buried event is dead with its error, listed, and replay requeues it once."""
        await store.insert_event(_event("e1"))
        (job,) = await store.claim("p0", 1, "w", 30)
        await store.bury(job, "step 's0' overran its step budget of 5 ms")
        record = await store.get_event("e1")
        assert record.state is EventState.DEAD
        assert record.error is not None
        assert "budget" in record.error
        assert [e.id for e in await store.list_events(EventState.DEAD)] == ["e1"]
        assert await store.dead_step("e1") == (0, 1)  # the step that died, its attempts
        assert await store.replay("e1", time.time() + 60) is True
        assert await store.dead_step("e1") is None
        assert await store.replay("e1", time.time() + 60) is False
        (again,) = await store.claim("p0", 1, "w", 30)
        assert again.attempts == 1
        assert (await store.get_event("e1")).state is EventState.ACCEPTED

    async def test_stale_owner_jobs_are_reclaimed(self, store: JobStore) -> None:
        """Jobs of an owner that stopped beating return to the queue; live owners keep theirs."""
        await store.insert_event(_event("a"))
        await store.insert_event(_event("b"))
        await store.heartbeat("alive")
        await store.claim("p0", 1, "alive", 300)
        await store.claim("p0", 1, "silent", 300)
        assert await store.reclaim(stale_after_s=5) == 1
        (job,) = await store.claim("p0", 5, "alive", 300)
        assert job.attempts == 2

    async def test_release_on_clean_shutdown(self, store: JobStore) -> None:
        """Released jobs are claimable again without counting an attempt."""
        await store.insert_event(_event("a"))
        await store.claim("p0", 1, "w", 300)
        assert await store.release("w") == 1
        (job,) = await store.claim("p0", 1, "w2", 300)
        assert job.attempts == 1

    async def test_event_states(self, store: JobStore) -> None:
        """States come back for known ids only."""
        await store.insert_event(_event("a"))
        assert await store.event_states(["a", "zz"]) == {"a": EventState.ACCEPTED}


class TestDepths:
    async def test_depths_follow_this_stores_own_writes(self, store: JobStore) -> None:
        """``depths`` is exact for this store's own writes, read after each one returns:
        accepts add, claims take, a completion moves the job to the next pool, a retry and a
        release put jobs back. It then agrees with ``queue_depths`` from the database."""
        for i in range(3):
            await store.insert_event(_event(f"e{i}"))
        assert store.depths["p0"] == 3
        first, second = await store.claim("p0", 2, "w", 30)
        assert store.depths["p0"] == 1
        await store.complete(_done(first))
        await store.retry(second, time.time(), "boom")
        assert (store.depths["p0"], store.depths["p1"]) == (2, 1)
        await store.claim("p1", 1, "w", 30)
        assert store.depths["p1"] == 0
        assert await store.release("w") == 1
        assert store.depths["p1"] == 1
        assert {pool: n for pool, n in store.depths.items() if n} == await store.queue_depths()
