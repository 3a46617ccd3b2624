"""Waiting on a condition instead of sleeping for a guessed time.

A test that sleeps "long enough" fails on a loaded machine and wastes time on an idle one;
one that polls the condition it needs, with a deadline far above the usual wait, does
neither. The deadline only bounds a broken run: it is never the thing being tested.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout_s: float = 60.0,
    every_s: float = 0.02,
) -> None:
    """Return once ``condition()`` is true; raise ``AssertionError`` naming ``what`` if it is
    still false after ``timeout_s``. ``condition`` may be a plain or an async callable."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(every_s)
