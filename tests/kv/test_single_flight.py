"""Single flight: one computation per key for concurrent callers, whatever happens to them."""

from __future__ import annotations

import asyncio

import pytest

from sluice.kv.single_flight import SingleFlight


class Work:
    """A computation that counts its runs and finishes when the test lets it."""

    def __init__(self, fail: int = 0) -> None:
        self.runs = 0
        self.fail = fail  # the first ``fail`` runs raise
        self.release = asyncio.Event()
        self.running = asyncio.Event()  # set once the first run has started

    async def __call__(self) -> int:
        self.runs += 1
        run = self.runs
        self.running.set()
        await self.release.wait()
        await asyncio.sleep(0.01)  # a real computation takes a while: callers overlap it
        if run <= self.fail:
            raise ConnectionError(f"run {run} failed")
        return run


class TestSharing:
    async def test_concurrent_callers_share_one_run(self) -> None:
        """Ten callers of one key get one run's result; only the first computed it."""
        flight: SingleFlight[str, int] = SingleFlight()
        work = Work()
        calls = [asyncio.create_task(flight.do_shared("k", work)) for _ in range(10)]
        await work.running.wait()
        await asyncio.sleep(0.01)
        work.release.set()
        results = await asyncio.gather(*calls)
        assert work.runs == 1
        assert [value for value, _ in results] == [1] * 10
        assert [shared for _, shared in results] == [False] + [True] * 9
        assert len(flight) == 0

    async def test_other_keys_run_apart(self) -> None:
        """Callers of different keys do not share."""
        flight: SingleFlight[str, int] = SingleFlight()
        work = Work()
        work.release.set()
        await asyncio.gather(flight.do("a", work), flight.do("b", work))
        assert work.runs == 2

    async def test_a_finished_key_runs_again(self) -> None:
        """A result is shared only while it is being computed, never cached."""
        flight: SingleFlight[str, int] = SingleFlight()
        work = Work()
        work.release.set()
        assert await flight.do("k", work) == 1
        assert await flight.do("k", work) == 2


class TestErrors:
    async def test_an_error_reaches_every_waiter(self) -> None:
        """By default the leader's error is every follower's, from the one run."""
        flight: SingleFlight[str, int] = SingleFlight()
        work = Work(fail=1)
        calls = [asyncio.create_task(flight.do("k", work)) for _ in range(5)]
        await work.running.wait()
        work.release.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)
        assert work.runs == 1

    async def test_followers_retry_when_errors_are_not_shared(self) -> None:
        """With share_errors=False the followers elect a new leader and share its run."""
        flight: SingleFlight[str, int] = SingleFlight()
        work = Work(fail=1)
        calls = [
            asyncio.create_task(flight.do_shared("k", work, share_errors=False)) for _ in range(5)
        ]
        await work.running.wait()
        work.release.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[0], ConnectionError)
        assert results[1:] == [(2, False)] + [(2, True)] * 3
        assert work.runs == 2


class TestCancellation:
    async def test_a_cancelled_follower_leaves_the_others(self) -> None:
        """Cancelling one follower neither cancels the run nor the other callers."""
        flight: SingleFlight[str, int] = SingleFlight()
        work = Work()
        leader = asyncio.create_task(flight.do("k", work))
        await work.running.wait()
        quitter = asyncio.create_task(flight.do("k", work))
        stayer = asyncio.create_task(flight.do("k", work))
        await asyncio.sleep(0.01)
        quitter.cancel()
        await asyncio.sleep(0.01)
        work.release.set()
        assert (await leader, await stayer) == (1, 1)
        assert quitter.cancelled()
        assert work.runs == 1

    async def test_a_cancelled_leader_hands_over(self) -> None:
        """Cancelling the leader cancels its run; the followers share one new run."""
        flight: SingleFlight[str, int] = SingleFlight()
        work = Work()
        leader = asyncio.create_task(flight.do("k", work))
        await work.running.wait()
        followers = [asyncio.create_task(flight.do("k", work)) for _ in range(3)]
        await asyncio.sleep(0.01)
        leader.cancel()
        await asyncio.sleep(0.01)
        work.release.set()
        assert await asyncio.gather(*followers) == [2, 2, 2]
        assert leader.cancelled()
        assert work.runs == 2
        assert len(flight) == 0


class TestBound:
    async def test_past_max_keys_callers_run_unshared(self) -> None:
        """At most max_keys keys are held; more keys still run, just not shared."""
        flight: SingleFlight[str, int] = SingleFlight(max_keys=2)
        work = Work()
        calls = [asyncio.create_task(flight.do(f"k{i}", work)) for i in range(4)]
        await asyncio.sleep(0.01)
        assert len(flight) == 2
        work.release.set()
        await asyncio.gather(*calls)
        assert work.runs == 4
        assert len(flight) == 0

    def test_a_bound_below_one_is_refused(self) -> None:
        """A flight table that could hold no key is a programming error."""
        with pytest.raises(ValueError, match="max_keys"):
            SingleFlight(max_keys=0)
