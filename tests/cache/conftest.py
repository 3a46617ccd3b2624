"""Shared helpers for the cache tests: a settable clock and a small real model."""

from __future__ import annotations

import asyncio

import pytest

from sluice.models.base import ModelRequest, ModelResult, Usage


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class KeywordModel:
    """A deterministic keyword classifier that counts its calls (a real Model, not a mock).

    ``delay`` makes each call take that long, so concurrent callers overlap; ``fail_next``
    makes the next call raise.
    """

    def __init__(self, version: str = "1", delay: float = 0.0) -> None:
        self.version = version
        self.name = "keywords"
        self.calls = 0
        self.delay = delay
        self.fail_next = False

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Label ``card_arrival`` when the text mentions a card, else ``other``."""
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("downstream reset")
        label = "card_arrival" if "card" in request.text.lower() else "other"
        return ModelResult(
            model=self.name,
            output={"label": label, "params": dict(request.params)},
            label=label,
            confidence=0.75,
            usage=Usage(12, 3),
            cost=0.002,
            latency_ms=40.0,
        )


@pytest.fixture
def clock() -> Clock:
    """A fresh clock."""
    return Clock()
