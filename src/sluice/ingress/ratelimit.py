"""Per-tenant rate limits: token buckets, configured per tenant and per tenant/workflow.

::

    rate_limits:
      default: {rate: 100, burst: 200}        # requests per second, bucket size
      tenants:
        acme: {rate: 500, burst: 1000}
        acme/triage: {rate: 50, burst: 50}    # one workflow of one tenant

Buckets live in the app's KV (:class:`sluice.kv.limiter.KVRateLimiter`): in process by
default (a bounded map, so invented tenants cannot grow memory without bound), in Redis when
several gateways must share one limit.
"""

from __future__ import annotations

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
