"""A clock that moves only when a test says so.

Breakers, retry budgets, SLO guards, spend budgets, caches and the AI gateway's idempotency
keys all take their clock as a ``Callable[[], float]`` (``clock=time.monotonic`` or
``clock=time.time`` by default); a :class:`ManualClock` fits every one of them, so a test
steps through a cool-down or an expiry without sleeping::

    clock = ManualClock()
    breaker = CircuitBreaker("model:large", BreakerSettings(), clock=clock)
    ...
    clock.advance(30)  # the cool-down is over

Where code also sleeps through an injected ``sleep`` (a guarded model's retries), pass
:meth:`ManualClock.sleep`: the wait is recorded and moves the clock, and nothing waits.
"""

from __future__ import annotations

import asyncio


class ManualClock:
    """Seconds that move only when a test (or code sleeping on it) says so.

    Call it for the time, like ``time.monotonic()``. It starts at ``start`` (1000 by default,
    far from zero so that "never" and "at the start" differ) and fits a wall-clock parameter
    as well as a monotonic one: only differences matter to the code under test.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        #: Every wait :meth:`sleep` was asked for, in order.
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, move time by it and yield once to the loop, without waiting."""
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
