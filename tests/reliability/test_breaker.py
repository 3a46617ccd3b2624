"""Circuit breakers: every transition, both triggers, the probe limit, snapshots, the registry."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from sluice.errors import ConfigError, StepError
from sluice.reliability.breaker import (
    BreakerOpenError,
    BreakerRegistry,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
)
from sluice.testing import ManualClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(clock: ManualClock, **settings: Any) -> CircuitBreaker:
    """A breaker on ``model:large`` with small, readable thresholds."""
    base: dict[str, Any] = {"failure_threshold": 3, "min_requests": 10, "open_s": 5.0}
    return CircuitBreaker("model:large", BreakerSettings(**{**base, **settings}), clock=clock)


def calls(breaker: CircuitBreaker, outcomes: str) -> None:
    """Run one call per character: ``s`` succeeds, ``f`` fails."""
    for outcome in outcomes:
        assert breaker.allow()
        breaker.record(outcome == "s")


def last_reason(breaker: CircuitBreaker) -> str:
    """Why the breaker last changed state."""
    last = breaker.snapshot().last_transition
    assert last is not None
    return last.reason


def trip(breaker: CircuitBreaker) -> None:
    """Open the breaker with consecutive failures."""
    calls(breaker, "f" * breaker.settings.failure_threshold)
    assert breaker.state is OPEN


class TestClosed:
    def test_consecutive_failures_open(self) -> None:
        """The breaker opens at the failure threshold, not one failure before."""
        breaker = make(ManualClock())
        calls(breaker, "ff")
        assert breaker.state is CLOSED
        calls(breaker, "f")
        assert breaker.state is OPEN
        assert last_reason(breaker) == "3 consecutive failures"

    def test_success_resets_the_streak(self) -> None:
        """A success between failures restarts the consecutive count."""
        breaker = make(ManualClock())
        calls(breaker, "ffsffsff")
        assert breaker.state is CLOSED
        assert breaker.snapshot().consecutive_failures == 2

    def test_error_rate_opens_only_past_min_requests(self) -> None:
        """Half the calls failing opens it once the window holds min_requests, never before."""
        breaker = make(ManualClock(), failure_threshold=100)
        calls(breaker, "fsfsfsfsf")
        assert breaker.state is CLOSED  # 5 of 9 failed, but 9 < min_requests
        calls(breaker, "s")
        assert breaker.state is OPEN
        assert "5 of 10 calls failed" in last_reason(breaker)

    def test_error_rate_below_threshold_stays_closed(self) -> None:
        """A 40% error rate under a 50% threshold does not open the breaker."""
        breaker = make(ManualClock(), failure_threshold=100)
        calls(breaker, "fsfss" * 10)
        assert breaker.state is CLOSED

    def test_old_failures_leave_the_window(self) -> None:
        """Failures older than window_s no longer count towards the error rate."""
        clock = ManualClock()
        breaker = make(clock, failure_threshold=100, window_s=10.0)
        calls(breaker, "f" * 9)
        clock.advance(11.0)
        calls(breaker, "fs" * 4 + "ss")
        assert breaker.state is CLOSED
        assert breaker.snapshot().window_requests == 10

    async def test_bad_requests_are_not_failures(self) -> None:
        """Non-retryable StepErrors (the caller's fault) do not count against the downstream."""
        breaker = make(ManualClock())
        for _ in range(5):
            with pytest.raises(StepError):
                async with breaker.guard():
                    raise StepError("400 bad request", retryable=False)
        assert breaker.state is CLOSED
        assert breaker.snapshot().consecutive_failures == 0


class TestOpen:
    async def test_refuses_with_a_retryable_error_naming_the_downstream(self) -> None:
        """An open breaker refuses at once; the error is a retryable StepError with retry_after."""
        clock = ManualClock()
        breaker = make(clock)
        trip(breaker)
        clock.advance(2.0)
        assert not breaker.allow()
        with pytest.raises(BreakerOpenError) as caught:
            async with breaker.guard():
                pytest.fail("an open breaker ran the call")
        error = caught.value
        assert isinstance(error, StepError)
        assert error.retryable
        assert error.retry_after == pytest.approx(3.0)
        assert "'model:large' is open" in str(error)
        assert "3 consecutive failures" in str(error)
        assert breaker.snapshot().counts["rejected"] == 2

    def test_goes_half_open_after_open_s(self) -> None:
        """After open_s the breaker is half-open, and not a moment before."""
        clock = ManualClock()
        breaker = make(clock)
        trip(breaker)
        clock.advance(4.99)
        assert breaker.state is OPEN
        clock.advance(0.01)
        assert breaker.state is HALF_OPEN


class TestHalfOpen:
    def half_open(self, clock: ManualClock, **settings: Any) -> CircuitBreaker:
        """A breaker tripped and left open for open_s."""
        breaker = make(clock, **settings)
        trip(breaker)
        clock.advance(5.0)
        return breaker

    def test_probe_limit(self) -> None:
        """Only half_open_probes calls get through while their outcome is pending."""
        breaker = self.half_open(ManualClock(), half_open_probes=2, probe_successes=2)
        assert breaker.allow()
        assert breaker.allow()
        assert not breaker.allow()
        assert breaker.open_error().retry_after == 5.0
        breaker.record(True)
        assert breaker.state is HALF_OPEN
        assert not breaker.allow()  # one probe won, one pending: still no third

    def test_closes_after_enough_probe_successes(self) -> None:
        """probe_successes successful probes close the breaker and clear its counts."""
        breaker = self.half_open(ManualClock(), half_open_probes=2, probe_successes=2)
        calls(breaker, "s")
        assert breaker.state is HALF_OPEN
        calls(breaker, "s")
        assert breaker.state is CLOSED
        snap = breaker.snapshot()
        assert (snap.window_requests, snap.consecutive_failures) == (0, 0)

    def test_probe_failure_reopens_for_open_s(self) -> None:
        """A failed probe opens the breaker again for a full open_s."""
        clock = ManualClock()
        breaker = self.half_open(clock, half_open_probes=2, probe_successes=2)
        calls(breaker, "sf")
        assert breaker.state is OPEN
        assert breaker.open_error().retry_after == 5.0
        assert last_reason(breaker) == "a probe failed"

    async def test_cancelled_probe_frees_its_slot(self) -> None:
        """A probe cancelled by its caller gives no verdict and lets another probe through."""
        breaker = self.half_open(ManualClock())
        with pytest.raises(asyncio.CancelledError):
            async with breaker.guard():
                raise asyncio.CancelledError
        assert breaker.state is HALF_OPEN
        assert breaker.allow()

    async def test_late_outcomes_from_before_opening_are_ignored(self) -> None:
        """A slow call admitted while closed cannot decide the half-open breaker's fate."""
        clock = ManualClock()
        breaker = make(clock)

        async def slow_call() -> None:
            async with breaker.guard():
                trip(breaker)
                clock.advance(5.0)
                assert breaker.allow()  # the probe
                raise StepError("the slow call finally failed")

        with pytest.raises(StepError):
            await slow_call()
        assert breaker.state is HALF_OPEN
        breaker.record(True)
        assert breaker.state is CLOSED


class TestSnapshot:
    def test_every_transition_is_counted_and_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """closed->open->half_open->open->half_open->closed shows in counts, logs, last."""
        caplog.set_level(logging.INFO, logger="sluice.reliability")
        clock = ManualClock()
        breaker = make(clock)
        trip(breaker)
        clock.advance(5.0)
        calls(breaker, "f")
        clock.advance(5.0)
        calls(breaker, "s")
        clock.advance(1.5)
        snap = breaker.snapshot()
        assert snap.state is CLOSED
        assert dict(snap.transitions) == {
            "closed->open": 1,
            "open->half_open": 2,
            "half_open->open": 1,
            "half_open->closed": 1,
        }
        assert snap.last_transition is not None
        assert (snap.last_transition.source, snap.last_transition.target) == (HALF_OPEN, CLOSED)
        assert snap.seconds_since_transition == pytest.approx(1.5)
        assert dict(snap.counts) == {"allowed": 5, "rejected": 0, "successes": 1, "failures": 4}
        moves = [r.getMessage() for r in caplog.records if r.name == "sluice.reliability"]
        assert len(moves) == 5
        assert moves[0] == "breaker model:large: closed -> open (3 consecutive failures)"
        assert [r.levelname for r in caplog.records][:2] == ["WARNING", "INFO"]

    def test_open_snapshot_reports_time_to_probe(self) -> None:
        """An open breaker's snapshot says how long until it lets a probe through."""
        clock = ManualClock()
        breaker = make(clock)
        trip(breaker)
        clock.advance(1.0)
        assert breaker.snapshot().retry_after == pytest.approx(4.0)

    def test_settings_are_checked(self) -> None:
        """Impossible settings are refused with a ConfigError."""
        with pytest.raises(ConfigError, match="probe_successes"):
            BreakerSettings(half_open_probes=1, probe_successes=2)
        with pytest.raises(ConfigError, match="error_rate"):
            BreakerSettings(error_rate=0.0)


class TestRegistry:
    def test_one_breaker_per_name_with_overrides(self) -> None:
        """A name always maps to the same breaker; overrides give a name its own settings."""
        special = BreakerSettings(failure_threshold=1)
        registry = BreakerRegistry(overrides={"model:small": special}, clock=ManualClock())
        assert registry.get("model:large") is registry.get("model:large")
        assert registry.get("model:small").settings is special
        assert [s.name for s in registry.snapshot()] == ["model:large", "model:small"]

    def test_bounded_by_evicting_the_least_recent_closed_breaker(self) -> None:
        """Past max_names the least recently used closed breaker goes; open ones stay."""
        registry = BreakerRegistry(BreakerSettings(failure_threshold=1), max_names=2)
        trip(registry.get("a"))
        registry.get("b")
        registry.get("c")
        assert len(registry) == 2
        assert [s.name for s in registry.snapshot()] == ["a", "c"]
        assert registry.get("a").state is OPEN

    def test_refuses_a_new_name_when_every_breaker_is_open(self) -> None:
        """When all breakers are open there is nothing safe to drop: a clear error instead."""
        registry = BreakerRegistry(BreakerSettings(failure_threshold=1), max_names=1)
        trip(registry.get("a"))
        with pytest.raises(StepError, match="registry full"):
            registry.get("b")
