"""Shared helpers for the cache tests: a manual clock fixture and a small real model."""

from __future__ import annotations

import asyncio

import pytest

from sluice.models.base import ModelRequest, ModelResult, Usage
from sluice.testing import ManualClock


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
def clock() -> ManualClock:
    """A fresh clock."""
    return ManualClock()
