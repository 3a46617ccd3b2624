"""Identifiers: time-ordered, so new rows land at the end of the primary-key index."""

from __future__ import annotations

import os
import random
import threading
import time

# Seeded from the OS once per process (and again after fork): ids need to be unique, not
# secret, and a syscall per id releases the GIL on the hot path of every accept.
_rng = random.Random(os.urandom(32))
_lock = threading.Lock()


def _reseed() -> None:
    _rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def new_event_id() -> str:
    """A 32-hex-digit id: 48 bits of milliseconds since the epoch, then 80 random bits."""
    with _lock:
        bits = _rng.getrandbits(80)
    return f"{int(time.time() * 1000):012x}{bits:020x}"
