"""Retry budgets: retries to a downstream stay a small share of its traffic.

When a downstream fails, every caller retrying ``attempts`` times multiplies its load just
when it can least take it. A budget allows retries only while, over a sliding window,
``retries <= ratio * first_attempts + floor``; the floor lets a quiet downstream still retry.
:func:`retry_delay` picks the wait before a retry: full jitter, never below ``Retry-After``,
and never past the caller's remaining time.
"""

from __future__ import annotations

import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from sluice.backoff import backoff_delay
from sluice.errors import ConfigError

Clock = Callable[[], float]
"""Seconds on some monotonic scale; injected so tests control time."""


class SlidingCounts:
    """Counters over the last ``window_s`` seconds, in ``buckets`` slices (bounded memory).

    Counts leave the window a slice at a time, so the window is exact to ``window_s / buckets``.
    """

    def __init__(self, window_s: float, *, fields: int, buckets: int = 10) -> None:
        if window_s <= 0 or buckets < 1 or fields < 1:
            raise ConfigError("window_s must be > 0, buckets and fields >= 1")
        self._width = window_s / buckets
        self._buckets = buckets
        self._fields = fields
        # Each slice is [slice number, count per field...]; at most ``buckets`` of them live.
        self._slices: deque[list[int]] = deque()

    def add(self, now: float, *amounts: int) -> None:
        """Add ``amounts`` (one per field) at time ``now``."""
        slot = math.floor(now / self._width)
        self._expire(slot)
        if not self._slices or self._slices[-1][0] != slot:
            self._slices.append([slot] + [0] * self._fields)
        last = self._slices[-1]
        for i, amount in enumerate(amounts, start=1):
            last[i] += amount

    def totals(self, now: float) -> tuple[int, ...]:
        """The sum of each field over the window ending at ``now``."""
        self._expire(math.floor(now / self._width))
        return tuple(sum(s[i] for s in self._slices) for i in range(1, self._fields + 1))

    def clear(self) -> None:
        """Forget every count."""
        self._slices.clear()

    def _expire(self, slot: int) -> None:
        while self._slices and self._slices[0][0] <= slot - self._buckets:
            self._slices.popleft()


@dataclass(frozen=True, slots=True)
class RetryBudgetSettings:
    """Retries allowed per downstream: ``ratio`` of first attempts plus ``floor``, per window.

    At most ``max_names`` downstreams are tracked; the least recently used is forgotten first
    (it then starts again from the floor).
    """

    ratio: float = 0.1
    floor: int = 3
    window_s: float = 10.0
    max_names: int = 1024

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.floor < 0 or self.window_s <= 0 or self.max_names < 1:
            raise ConfigError("ratio and floor must be >= 0, window_s > 0, max_names >= 1")


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """One downstream's attempts in the current window, and the retries it may still make."""

    name: str
    first_attempts: int
    retries: int
    retries_left: int


class RetryBudget:
    """Retry budgets for many downstreams, each counted over its own sliding window.

    Not thread-safe: one event loop owns it. Check :meth:`can_retry` and then
    :meth:`record_attempt` without awaiting in between, so concurrent callers cannot both
    take the last retry.
    """

    def __init__(
        self, settings: RetryBudgetSettings | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self.settings = settings or RetryBudgetSettings()
        self._clock = clock
        self._windows: OrderedDict[str, SlidingCounts] = OrderedDict()

    def can_retry(self, name: str) -> bool:
        """Whether one more retry to ``name`` stays within its budget."""
        return self.snapshot(name).retries_left > 0

    def record_attempt(self, name: str, is_retry: bool) -> None:
        """Count one call to ``name``: a first attempt, or a retry."""
        window = self._windows.get(name)
        if window is None:
            if len(self._windows) >= self.settings.max_names:
                self._windows.popitem(last=False)
            window = self._windows[name] = SlidingCounts(self.settings.window_s, fields=2)
        else:
            self._windows.move_to_end(name)
        window.add(self._clock(), 0 if is_retry else 1, 1 if is_retry else 0)

    def snapshot(self, name: str) -> BudgetSnapshot:
        """Attempts to ``name`` in the window and the retries left."""
        window = self._windows.get(name)
        firsts, retries = window.totals(self._clock()) if window is not None else (0, 0)
        # The epsilon keeps float error (0.29 * 100 = 28.999...) from costing a whole retry.
        allowed = math.floor(self.settings.ratio * firsts + self.settings.floor + 1e-9)
        return BudgetSnapshot(name, firsts, retries, max(0, allowed - retries))

    def __len__(self) -> int:
        """How many downstreams are tracked."""
        return len(self._windows)


def retry_delay(
    attempt: int,
    *,
    remaining_s: float,
    retry_after: float | None = None,
    base_s: float = 0.1,
    cap_s: float = 30.0,
    min_attempt_s: float = 0.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the retry after ``attempt`` failures, or None if it cannot fit.

    Full jitter up to the exponential bound (drawn within what is left, so the draw itself
    never breaks the deadline), raised to ``retry_after`` when the server asked for one. None
    when that wait would leave less than ``min_attempt_s`` of ``remaining_s`` for the retry.
    """
    room = remaining_s - min_attempt_s
    if room <= 0 or (retry_after is not None and retry_after >= room):
        return None
    return backoff_delay(attempt, base_s, min(cap_s, room), retry_after, rng)
