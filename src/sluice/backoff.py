"""Retry delays: exponential backoff with full jitter, never below a server's Retry-After."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    base_s: float = 0.1,
    cap_s: float = 30.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before attempt ``attempt + 1`` after ``attempt`` failures (``attempt`` >= 1).

    Full jitter (a uniform draw up to the exponential bound) spreads retries of many failing
    jobs over time instead of synchronising them into waves.
    """
    bound = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    delay = (rng or random).uniform(0, bound)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
