"""Per-tenant rate limits: token buckets, configured per tenant and per tenant/workflow.

::

    rate_limits:
      default: {rate: 100, burst: 200}        # requests per second, bucket size
      tenants:
        acme: {rate: 500, burst: 1000}
        acme/triage: {rate: 50, burst: 50}    # one workflow of one tenant

The in-memory limiter holds one bucket per (tenant, workflow) in a bounded LRU, so an
attacker inventing tenants cannot grow memory without bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sluice.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Rate:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float


class RateLimiter(Protocol):
    """Takes one token for a key, or says how long until one is free."""

    async def acquire(self, key: str, rate: Rate) -> float:
        """0.0 when a token was taken; otherwise seconds until the next token."""
        ...


class MemoryRateLimiter:
    """Token buckets in this process, bounded in number."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys

    async def acquire(self, key: str, rate: Rate) -> float:
        """Take a token from ``key``'s bucket."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (rate.burst, now))
        tokens = min(rate.burst, tokens + (now - last) * rate.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate.rate


class RatePolicy:
    """Which rate applies to a (tenant, workflow)."""

    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        spec = spec or {}
        problems: list[str] = []
        self.default = self._rate(spec.get("default"), "rate_limits.default", problems)
        self._specific: dict[str, Rate | None] = {}
        for name, value in (spec.get("tenants") or {}).items():
            self._specific[str(name)] = self._rate(value, f"rate_limits.tenants.{name}", problems)
        if problems:
            raise ConfigError("invalid rate limits", problems)

    @staticmethod
    def _rate(value: Any, where: str, problems: list[str]) -> Rate | None:
        if value is None:
            return None
        try:
            rate = Rate(float(value["rate"]), float(value.get("burst", value["rate"])))
        except (TypeError, KeyError, ValueError):
            problems.append(f"{where}: expected {{rate: N, burst: M}}")
            return None
        if rate.rate <= 0 or rate.burst < 1:
            problems.append(f"{where}: rate must be > 0 and burst >= 1")
        return rate

    def for_(self, tenant: str, workflow: str) -> Rate | None:
        """The most specific rate: tenant/workflow, then tenant, then the default."""
        for key in (f"{tenant}/{workflow}", tenant):
            if key in self._specific:
                return self._specific[key]
        return self.default
