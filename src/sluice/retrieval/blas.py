"""Run a short matrix product on one BLAS thread, to keep search latency flat under load.

OpenBLAS splits even a 10k-row matrix-vector product across every core. On an idle machine
that saves a fraction of a millisecond; on a busy one (a worker pool runs many steps at once,
and other processes share the cores) the product waits for a descheduled helper thread, and
p99 grows from ~3 ms to ~15-30 ms (``bench/retrieval.py`` shows both). One thread is the
better trade for a search that takes about a millisecond.

The limit is process-wide while it is held, so it is taken under one lock: two indexes
limiting and restoring at once could otherwise leave BLAS on one thread for good. Without
``threadpoolctl`` (it comes with scikit-learn) the products run as BLAS decides.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LIMIT_LOCK = threading.Lock()


@functools.cache
def _controller() -> Any:
    try:
        # Imported by name: threadpoolctl ships no type information.
        module = importlib.import_module("threadpoolctl")
    except ImportError:
        return None
    # Building the controller scans the loaded libraries once (milliseconds); warm-up pays it.
    return module.ThreadpoolController()


@contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """Hold BLAS to ``limit`` threads inside the block (``None``: leave it alone)."""
    controller = _controller() if limit else None
    if controller is None:
        yield
        return
    with _LIMIT_LOCK, controller.limit(limits=limit, user_api="blas"):
        yield
