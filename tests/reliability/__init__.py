"""Tests of breakers, retry budgets and guarded models; ``ManualClock`` is their shared clock."""

from __future__ import annotations

import asyncio


class ManualClock:
    """Seconds that move only when a test (or a guarded model's sleep) says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, move time by it and yield once, without waiting for real."""
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
