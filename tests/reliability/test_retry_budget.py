"""Retry budgets (ratio, floor, window, bounds) and retry delays inside a time budget."""

from __future__ import annotations

import random

import pytest

from sluice.backoff import backoff_delay
from sluice.errors import ConfigError
from sluice.reliability.retry_budget import (
    RetryBudget,
    RetryBudgetSettings,
    SlidingCounts,
    retry_delay,
)
from sluice.testing import ManualClock


def retries_granted(budget: RetryBudget, name: str, wanted: int) -> int:
    """Ask for ``wanted`` retries the way a caller does; return how many were granted."""
    granted = 0
    for _ in range(wanted):
        if budget.can_retry(name):
            budget.record_attempt(name, is_retry=True)
            granted += 1
    return granted


class TestBudget:
    def test_floor_lets_a_quiet_downstream_retry(self) -> None:
        """With no traffic at all, the floor still allows a few retries, and no more."""
        budget = RetryBudget(RetryBudgetSettings(ratio=0.1, floor=3), clock=ManualClock())
        assert retries_granted(budget, "model:large", 10) == 3
        assert not budget.can_retry("model:large")

    def test_ratio_caps_retries_under_a_burst(self) -> None:
        """After 200 first attempts, 10% plus the floor may retry: 23 of 200 failures."""
        budget = RetryBudget(RetryBudgetSettings(ratio=0.1, floor=3), clock=ManualClock())
        for _ in range(200):
            budget.record_attempt("model:large", is_retry=False)
        assert retries_granted(budget, "model:large", 200) == 23
        snap = budget.snapshot("model:large")
        assert (snap.first_attempts, snap.retries, snap.retries_left) == (200, 23, 0)

    def test_new_traffic_earns_new_retries(self) -> None:
        """Every ten first attempts buy one more retry at a ratio of 0.1."""
        budget = RetryBudget(RetryBudgetSettings(ratio=0.1, floor=0), clock=ManualClock())
        for _ in range(9):
            budget.record_attempt("m", is_retry=False)
        assert not budget.can_retry("m")
        budget.record_attempt("m", is_retry=False)
        assert retries_granted(budget, "m", 5) == 1

    def test_the_window_slides(self) -> None:
        """Retries older than window_s stop counting, so the budget refills."""
        clock = ManualClock()
        budget = RetryBudget(RetryBudgetSettings(floor=3, window_s=10.0), clock=clock)
        assert retries_granted(budget, "m", 3) == 3
        clock.advance(5.0)
        assert not budget.can_retry("m")
        clock.advance(5.0)
        assert retries_granted(budget, "m", 5) == 3

    def test_downstreams_have_separate_budgets(self) -> None:
        """Retries to one downstream do not spend another's budget."""
        budget = RetryBudget(RetryBudgetSettings(floor=2), clock=ManualClock())
        assert retries_granted(budget, "a", 5) == 2
        assert retries_granted(budget, "b", 5) == 2

    def test_names_are_bounded(self) -> None:
        """Past max_names the least recently used downstream is forgotten."""
        budget = RetryBudget(RetryBudgetSettings(floor=1, max_names=2), clock=ManualClock())
        for name in ("a", "b", "a", "c"):
            budget.record_attempt(name, is_retry=True)
        assert len(budget) == 2
        assert budget.snapshot("b").retries == 0  # forgotten
        assert budget.snapshot("a").retries == 2

    def test_settings_are_checked(self) -> None:
        """A negative ratio is refused with a ConfigError."""
        with pytest.raises(ConfigError):
            RetryBudgetSettings(ratio=-0.1)


class TestSlidingCounts:
    def test_counts_leave_slice_by_slice(self) -> None:
        """A count stays for window_s and leaves with its slice."""
        counts = SlidingCounts(10.0, fields=2, buckets=10)
        counts.add(100.0, 1, 0)
        counts.add(104.5, 0, 1)
        assert counts.totals(109.9) == (1, 1)
        assert counts.totals(110.0) == (0, 1)
        assert counts.totals(115.0) == (0, 0)

    def test_memory_is_bounded_by_buckets(self) -> None:
        """However long it runs, the window holds at most ``buckets`` slices."""
        counts = SlidingCounts(1.0, fields=1, buckets=4)
        for i in range(10_000):
            counts.add(i * 0.01, 1)
        assert counts.totals(99.99) == (100,)
        assert len(counts._slices) <= 4


class TestRetryDelay:
    def test_reuses_backoff_with_full_jitter(self) -> None:
        """With time to spare the delay is exactly the runtime's jittered backoff."""
        for attempt in (1, 2, 5):
            got = retry_delay(attempt, remaining_s=60.0, rng=random.Random(attempt))
            assert got == backoff_delay(attempt, rng=random.Random(attempt))

    def test_jitter_is_full(self) -> None:
        """Draws spread from near zero up to the exponential bound."""
        rng = random.Random(7)
        draws = [retry_delay(3, remaining_s=60.0, base_s=0.1, rng=rng) or 0.0 for _ in range(500)]
        assert min(draws) < 0.02
        assert 0.38 < max(draws) <= 0.4

    def test_honours_retry_after(self) -> None:
        """A server's Retry-After is a lower bound on the delay."""
        rng = random.Random(1)
        assert all(
            (retry_delay(1, remaining_s=10.0, retry_after=2.0, rng=rng) or 0.0) >= 2.0
            for _ in range(100)
        )

    def test_never_past_the_remaining_time(self) -> None:
        """The draw stays within the time left, keeping room for the attempt itself."""
        rng = random.Random(3)
        for _ in range(200):
            delay = retry_delay(10, remaining_s=1.0, cap_s=30.0, min_attempt_s=0.25, rng=rng)
            assert delay is not None
            assert 0.0 <= delay <= 0.75

    def test_none_when_the_retry_cannot_fit(self) -> None:
        """No delay when time is up or Retry-After lands past the deadline."""
        assert retry_delay(1, remaining_s=0.0) is None
        assert retry_delay(1, remaining_s=2.0, retry_after=3.0) is None
        assert retry_delay(1, remaining_s=1.0, min_attempt_s=1.0) is None
