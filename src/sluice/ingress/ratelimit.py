"""Rate limits: token buckets per tenant, and optional ones per (tenant, workflow).

::

    rate_limits:
      default: {rate: 100, burst: 200}        # requests per second, bucket size: each tenant
      tenants:
        acme: {rate: 500, burst: 1000}        # all of acme's workflows together
      workflows:
        acme/triage: {rate: 50, burst: 50}    # one workflow of one tenant, within acme's limit
        "*/triage": {rate: 20}                # each tenant's triage runs, unless named above

A tenant's limit (its own entry, else ``default``) is one bucket for everything the tenant
sends, whatever the workflow: a tenant gets its limit, not its limit times its workflows. A
``workflows`` entry is a second, narrower bucket an event must also pass. The narrow bucket is
asked first, so a request refused by it costs the tenant's bucket nothing.

Buckets live in the app's KV, drawn through the one rate limiter every limit of Sluice uses
(:class:`sluice.kv.limiter.KVRateLimiter`; ``Rate`` and ``RateLimiter`` are defined there and
named here too): in process by default (a bounded map, so invented tenants cannot grow
memory without bound), in Redis when several gateways must share one limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.config import unknown_problems
from sluice.errors import ConfigError
from sluice.kv.limiter import Rate, RateLimiter

__all__ = ["Bucket", "Rate", "RateLimiter", "RatePolicy"]

_SECTIONS = ("default", "tenants", "workflows")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket a request must draw from: its KV key, its rate, and what it limits."""

    key: str
    rate: Rate
    scope: str  # "tenant" or "workflow", for the refusal's message


#: The settings of one bucket.
_RATE_KEYS = ("rate", "burst")


class RatePolicy:
    """Which buckets a (tenant, workflow) draws from; every problem is reported at load."""

    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        spec = spec or {}
        problems: list[str] = []
        if not isinstance(spec, Mapping):
            raise ConfigError("invalid rate limits", ["rate_limits: expected a mapping"])
        problems += [f"rate_limits.{k}: unknown setting (known: {', '.join(_SECTIONS)})"
                     for k in spec if k not in _SECTIONS]  # fmt: skip
        self.default = self._rate(spec.get("default"), "rate_limits.default", problems)
        self._tenants: dict[str, Rate | None] = {}
        for name, value in self._section(spec, "tenants", problems).items():
            where = f"rate_limits.tenants.{name}"
            if "/" in str(name):
                problems.append(
                    f"{where}: a tenant limit covers all its workflows; put a per-workflow"
                    f" limit under rate_limits.workflows as TENANT/WORKFLOW"
                )
                continue
            self._tenants[str(name)] = self._rate(value, where, problems)
        self._workflows: dict[str, Rate | None] = {}
        for name, value in self._section(spec, "workflows", problems).items():
            where = f"rate_limits.workflows.{name}"
            tenant, sep, workflow = str(name).partition("/")
            if not sep or not tenant or not workflow or "/" in workflow:
                problems.append(f"{where}: expected TENANT/WORKFLOW (or */WORKFLOW)")
                continue
            self._workflows[str(name)] = self._rate(value, where, problems)
        if problems:
            raise ConfigError("invalid rate limits", problems)

    @staticmethod
    def _section(spec: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
        value = spec.get(name) or {}
        if not isinstance(value, Mapping):
            problems.append(f"rate_limits.{name}: expected a mapping of name: {{rate, burst}}")
            return {}
        return value

    @staticmethod
    def _rate(value: Any, where: str, problems: list[str]) -> Rate | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            problems.extend(unknown_problems(value, _RATE_KEYS, f"{where}.", "setting"))
        try:
            rate = Rate(float(value["rate"]), float(value.get("burst", value["rate"])))
        except (TypeError, KeyError, ValueError, AttributeError):
            problems.append(f"{where}: expected {{rate: N, burst: M}}")
            return None
        if not (rate.rate > 0 and rate.burst >= 1):  # also refuses nan
            problems.append(f"{where}: rate must be > 0 and burst >= 1")
        return rate

    def check_workflows(self, known: set[str]) -> None:
        """Refuse ``workflows`` entries that name no workflow of the app."""
        problems = [
            f"rate_limits.workflows.{name}: unknown workflow {name.partition('/')[2]!r}"
            f" (known: {', '.join(sorted(known))})"
            for name in self._workflows
            if name.partition("/")[2] not in known
        ]
        if problems:
            raise ConfigError("invalid rate limits", problems)

    def tenant_rate(self, tenant: str) -> Rate | None:
        """The tenant's own limit (``None`` in its entry: unlimited), else the default."""
        if tenant in self._tenants:
            return self._tenants[tenant]
        return self.default

    def workflow_rate(self, tenant: str, workflow: str) -> Rate | None:
        """The per-workflow limit of (tenant, workflow): its own entry, then ``*/workflow``."""
        for key in (f"{tenant}/{workflow}", f"*/{workflow}"):
            if key in self._workflows:
                return self._workflows[key]
        return None

    def buckets(self, tenant: str, workflow: str) -> list[Bucket]:
        """The buckets one request draws from, narrowest first."""
        found = []
        if (rate := self.workflow_rate(tenant, workflow)) is not None:
            found.append(Bucket(f"workflow:{tenant}/{workflow}", rate, "workflow"))
        if (rate := self.tenant_rate(tenant)) is not None:
            found.append(Bucket(f"tenant:{tenant}", rate, "tenant"))
        return found
