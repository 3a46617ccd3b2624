"""The ``retrieve`` built-in step: attach the most similar resolved tickets to the data.

Workflow use::

    - name: similar
      uses: retrieve
      pool: retrieval
      options: {index: tickets, k: 5, field: text, min_score: 0.3}

It finds ``services["indexes"][index]``, embeds ``data[field]`` (off the event loop when the
embedder is slow), and returns the data with ``neighbours: [{id, text, intent, resolution,
score}]``, best first. With a ``retrieval_cache`` service wired, identical queries against an
unchanged index are answered from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sluice.cache.config import RETRIEVAL_CACHE
from sluice.cache.retrieval import RetrievalCache
from sluice.errors import StepError
from sluice.retrieval.config import INDEXES
from sluice.retrieval.index import VectorIndex
from sluice.workflow.context import StepContext
from sluice.workflow.model import JSONObject

#: Most neighbours one step may ask for: results travel in the event payload.
MAX_K = 50


def _options(ctx: StepContext, indexes: Mapping[str, Any]) -> tuple[str, int, str, float | None]:
    options = ctx.options
    name = options.get("index")
    if name is None and len(indexes) == 1:
        name = next(iter(indexes))
    if name not in indexes:
        raise StepError(
            f"step {ctx.step!r}: unknown index {name!r} (wired: {sorted(indexes)})",
            retryable=False,
        )
    k = options.get("k", 5)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise StepError(f"step {ctx.step!r}: k must be 1..{MAX_K}, got {k!r}", retryable=False)
    min_score = options.get("min_score")
    if min_score is not None and (
        not isinstance(min_score, int | float) or isinstance(min_score, bool)
    ):
        raise StepError(
            f"step {ctx.step!r}: min_score must be a number, got {min_score!r}", retryable=False
        )
    return str(name), k, str(options.get("field", "text")), min_score


async def _search(index: VectorIndex, text: str, k: int) -> list[dict[str, Any]]:
    if index.embedder.slow:
        # A neural encoder takes milliseconds of CPU: keep the event loop free meanwhile.
        found = await asyncio.to_thread(index.search, text, k)
    else:
        found = index.search(text, k)
    return [neighbour.as_dict() for neighbour in found]


async def retrieve(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Add ``neighbours`` (the ``k`` most similar indexed items to ``data[field]``) to the data."""
    indexes: Mapping[str, VectorIndex] = ctx.service(INDEXES)
    name, k, field, min_score = _options(ctx, indexes)
    text = data.get(field)
    if not isinstance(text, str):
        raise StepError(
            f"step {ctx.step!r}: field {field!r} must be a string, got {type(text).__name__}",
            retryable=False,
        )
    index = indexes[name]
    cache: RetrievalCache | None = ctx.services.get(RETRIEVAL_CACHE)
    key = RetrievalCache.key(index, text, k) if cache is not None else ""
    neighbours = await cache.get(key) if cache is not None else None
    if neighbours is None:
        neighbours = await _search(index, text, k)
        if cache is not None:
            await cache.put(key, neighbours)
    if min_score is not None:
        neighbours = [n for n in neighbours if n["score"] >= min_score]
    return {**data, "neighbours": neighbours}
