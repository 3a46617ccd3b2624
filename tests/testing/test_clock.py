"""ManualClock: time moves only when told, and fits the clock parameters of the runtime."""

from __future__ import annotations

from sluice.cache.backend import MemoryBackend
from sluice.reliability.breaker import BreakerSettings, BreakerState, CircuitBreaker
from sluice.testing import ManualClock


class TestManualClock:
    def test_time_moves_only_when_advanced(self) -> None:
        """Calling it reads the time; advance moves it."""
        clock = ManualClock(start=50.0)
        assert (clock(), clock()) == (50.0, 50.0)
        clock.advance(2.5)
        assert clock() == 52.5

    async def test_sleep_records_the_wait_and_moves_time(self) -> None:
        """A sleep on the clock passes at once, moves the clock by its length, and is kept."""
        clock = ManualClock()
        await clock.sleep(3.0)
        await clock.sleep(0.5)
        assert clock() == 1003.5
        assert clock.sleeps == [3.0, 0.5]

    def test_drives_a_breaker_through_its_cool_down(self) -> None:
        """An open breaker lets a probe through once its cool-down has passed on the clock."""
        clock = ManualClock()
        settings = BreakerSettings(failure_threshold=1, open_s=30.0)
        breaker = CircuitBreaker("model:large", settings, clock=clock)
        assert breaker.allow()
        breaker.record(success=False)
        states = [breaker.state]
        clock.advance(29.0)
        states.append(breaker.state)
        clock.advance(1.0)
        states.append(breaker.state)
        assert states == [BreakerState.OPEN, BreakerState.OPEN, BreakerState.HALF_OPEN]

    async def test_expires_a_cache_entry(self) -> None:
        """A cache entry lives until its TTL has passed on the clock, not a moment longer."""
        clock = ManualClock()
        cache = MemoryBackend(max_entries=10, clock=clock)
        await cache.set("k", b"v", ttl_s=10.0)
        clock.advance(9.9)
        assert await cache.get("k") == b"v"
        clock.advance(0.1)
        assert await cache.get("k") is None
