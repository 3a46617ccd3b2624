"""The response cache: a model's answer, stored under a hash of everything that shaped it.

The key (:func:`sluice.cache.keys.response_key`) covers the model's name and version, the
normalized prompt, labels, context and parameters; a new model version therefore never sees
an older version's answers. :class:`CachedModel` puts the cache in front of any
:class:`~sluice.models.base.Model`:

* a hit returns the stored answer with ``cost=0`` and zero usage (nothing was spent) and the
  lookup's own latency, so cost and latency accounting stay true;
* concurrent misses on one key share one model call (single flight), so a burst of identical
  tickets costs one call, not one per ticket;
* errors are never cached: the next request asks the model again.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.cache.backend import CacheBackend
from sluice.cache.errors import CacheConfigError
from sluice.cache.keys import response_key
from sluice.cache.stats import CacheStats, Counters
from sluice.kv.single_flight import SingleFlight
from sluice.models.base import Model, ModelRequest, ModelResult, Usage
from sluice.telemetry.call_spans import cache_span, record_hit

#: Default time to live of a cached answer: a day, long enough to matter, short enough that
#: a changed price or prompt template ages out without a flush.
DEFAULT_RESPONSE_TTL_S = 86_400.0


def encode_result(result: ModelResult) -> bytes:
    """A model result as JSON bytes."""
    return orjson.dumps(
        {
            "model": result.model,
            "output": result.output,
            "label": result.label,
            "confidence": result.confidence,
            "usage": [result.usage.input_tokens, result.usage.output_tokens],
            "cost": result.cost,
        }
    )


def decode_result(raw: bytes, *, latency_ms: float) -> ModelResult:
    """A cached result as served: same answer, no cost or usage, the lookup's latency."""
    data: dict[str, Any] = orjson.loads(raw)
    return ModelResult(
        model=data["model"],
        output=data["output"],
        label=data["label"],
        confidence=float(data["confidence"]),
        usage=Usage(),
        cost=0.0,
        latency_ms=latency_ms,
        cached=True,
    )


class ResponseCache:
    """Model answers in a :class:`CacheBackend`, with a TTL and hit/miss counts."""

    def __init__(
        self, backend: CacheBackend, *, ttl_s: float | None = DEFAULT_RESPONSE_TTL_S
    ) -> None:
        if ttl_s is not None and ttl_s <= 0:
            raise CacheConfigError(f"response cache ttl_s must be positive, got {ttl_s}")
        self.backend = backend
        self.ttl_s = ttl_s
        self._counters = Counters()

    async def get(self, key: str) -> ModelResult | None:
        """The answer stored under ``key`` (counted as a hit), or ``None`` (a miss)."""
        started = time.perf_counter()
        with cache_span("response") as span:
            raw = await self.backend.get(key)
            record_hit(span, raw is not None)
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            result = None if raw is None else decode_result(raw, latency_ms=latency_ms)
        except (KeyError, TypeError, ValueError):
            # A shared store may hold what this version cannot read (written by another
            # version, or damaged): a miss, and the model's answer overwrites it.
            result = None
        if result is None:
            self._counters.misses += 1
            return None
        self._counters.hits += 1
        return result

    async def put(self, key: str, result: ModelResult) -> None:
        """Store ``result`` under ``key`` for the cache's TTL."""
        await self.backend.set(key, encode_result(result), self.ttl_s)

    def stats(self) -> CacheStats:
        """Hits, misses, evictions, expirations and size."""
        return self._counters.snapshot(self.backend.stats())

    def wrap(self, model: Model, *, casefold: bool = False) -> CachedModel:
        """Put this cache in front of ``model`` (``casefold`` only for uncased models)."""
        return CachedModel(model, self, casefold=casefold)


class CachedModel:
    """A :class:`~sluice.models.base.Model` that answers from a :class:`ResponseCache` first."""

    def __init__(self, model: Model, cache: ResponseCache, *, casefold: bool = False) -> None:
        self.model = model
        self.cache = cache
        self.casefold = casefold
        self._flights: SingleFlight[str, ModelResult] = SingleFlight()

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return self.model.name

    @property
    def version(self) -> str:
        """The wrapped model's version."""
        return self.model.version

    def key(self, request: ModelRequest) -> str:
        """The cache key of ``request`` for this model."""
        return response_key(self.model.name, self.model.version, request, casefold=self.casefold)

    async def predict(self, request: ModelRequest) -> ModelResult:
        """The cached answer to ``request``, or the model's (then cached)."""
        key = self.key(request)
        cached = await self.cache.get(key)
        if cached is not None:
            return cached
        # Another request may be asking the model the same thing: share its answer.
        return await self._flights.do(key, lambda: self._call(key, request))

    async def _call(self, key: str, request: ModelRequest) -> ModelResult:
        result = await self.model.predict(request)
        await self.cache.put(key, result)
        return result
