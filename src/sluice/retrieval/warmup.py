"""Warm-up: pay every one-time cost before the first query instead of during it.

The first search after start-up is slow for reasons that have nothing to do with the query:
the encoder's weights load (seconds for MiniLM), torch builds its kernels, BLAS starts its
threads, and the index matrix is paged in. :func:`warm_up` runs one embed and one search so
all of that happens at start-up; ``bench/retrieval.py`` measures the first query with and
without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sluice.retrieval.index import VectorIndex

#: A query shaped like real traffic, so tokenizer and encoder paths are the ones used later.
_WARM_TEXT = "My card payment was declined, what should I do?"


@dataclass(frozen=True, slots=True)
class WarmUpReport:
    """How long the warm-up's embed and search took (the costs the first query is spared)."""

    embed_ms: float
    search_ms: float


def warm_up(index: VectorIndex, *, rounds: int = 2) -> WarmUpReport:
    """Embed one text and search ``index`` ``rounds`` times; report the first round's cost."""
    started = time.perf_counter()
    vector = index.embedder.embed([_WARM_TEXT])
    embedded = time.perf_counter()
    index.search_vectors(vector, 5)
    searched = time.perf_counter()
    for _ in range(max(0, rounds - 1)):
        index.search_vectors(index.embedder.embed([_WARM_TEXT]), 5)
    return WarmUpReport(
        embed_ms=(embedded - started) * 1000, search_ms=(searched - embedded) * 1000
    )
