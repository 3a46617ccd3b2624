"""Identifiers: time-ordered, so new rows land at the end of the primary-key index."""

from __future__ import annotations

import os
import time


def new_event_id() -> str:
    """A 32-hex-digit id: 48 bits of milliseconds since the epoch, then 80 random bits."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"
