"""The reliability sections of an app config: breakers, retry budgets and spend budgets.

::

    reliability:
      guard_tiers: true        # false: costly tiers are called bare (no breaker, no retry
                               # budget, no fallback): failures fail the step and the
                               # executor's plain retries apply. For baselines and drills.
      breaker: {failure_threshold: 5, error_rate: 0.5, window_s: 30, min_requests: 20, open_s: 10}
      retry_budget: {ratio: 0.1, floor: 3, window_s: 10}
      max_in_flight: {llm: 4} # a bulkhead per costly model: past it, the fallback answers

    spend:
      limits:                  # per workflow or tenant; "tenant:*" is every tenant's default
        "workflow:triage": {amount: 5.0, window: hour, on_exhausted: degrade}
        "tenant:*": {amount: 1.0, window: day, on_exhausted: refuse}
      reserve: {large: 0.0002} # held per call of a model before it runs, overriding its
                               # estimate (price table and request tokens, or a local
                               # model's price_per_call); for models with neither: the
                               # costliest call seen so far, else default_reserve
      default_reserve: 0.01

Every model call of a step is held against the budgets that apply (see
:mod:`sluice.reliability.escalation`). A step under a budget that degrades may declare
``options.degrade_to: MODEL``, the model that answers when the budget will not hold a call; a
one-tier ``classify`` step there must (checked at load by
:func:`sluice.reliability.services.check_degrade_paths`).

Every problem is reported at once with its path, like the rest of the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sluice.errors import ConfigError
from sluice.reliability.breaker import BreakerSettings
from sluice.reliability.retry_budget import RetryBudgetSettings
from sluice.reliability.spend import OnExhausted, SpendLimit


@dataclass(frozen=True, slots=True)
class ReliabilitySettings:
    """Whether costly tiers run guarded, and the breaker and retry-budget settings."""

    guard_tiers: bool = True
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    retry_budget: RetryBudgetSettings = field(default_factory=RetryBudgetSettings)
    max_in_flight: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpendSettings:
    """Spend limits by key, and what to hold per call of each model before it runs."""

    limits: Mapping[str, SpendLimit] = field(default_factory=dict)
    reserve: Mapping[str, float] = field(default_factory=dict)
    default_reserve: float = 0.01


def _dataclass(kind: type[Any], raw: object, path: str, problems: list[str]) -> Any:
    """``kind(**raw)`` with unknown keys and invalid values reported under ``path``."""
    if raw is None:
        return kind()
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping")
        return kind()
    known = {f.name for f in fields(kind)}
    unknown = [k for k in raw if k not in known]
    problems.extend(f"{path}.{k}: unknown setting (known: {', '.join(sorted(known))})"
                    for k in unknown)  # fmt: skip
    try:
        return kind(**{k: v for k, v in raw.items() if k in known})
    except (ConfigError, TypeError, ValueError) as exc:
        problems.append(f"{path}: {exc}")
        return kind()


def parse_reliability(raw: object) -> ReliabilitySettings:
    """The ``reliability:`` section; absent means every default."""
    if raw is None:
        return ReliabilitySettings()
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise ConfigError("invalid reliability section", ["reliability: must be a mapping"])
    unknown = set(raw) - {"guard_tiers", "breaker", "retry_budget", "max_in_flight"}
    problems.extend(f"reliability.{k}: unknown setting" for k in sorted(unknown))
    guard = raw.get("guard_tiers", True)
    if not isinstance(guard, bool):
        problems.append("reliability.guard_tiers: must be true or false")
    breaker = _dataclass(BreakerSettings, raw.get("breaker"), "reliability.breaker", problems)
    budget = _dataclass(
        RetryBudgetSettings, raw.get("retry_budget"), "reliability.retry_budget", problems
    )
    limits = raw.get("max_in_flight") or {}
    if not isinstance(limits, Mapping) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in limits.values()
    ):
        problems.append("reliability.max_in_flight: must map model names to integers >= 1")
        limits = {}
    if problems:
        raise ConfigError("invalid reliability section", problems)
    return ReliabilitySettings(
        guard_tiers=bool(guard),
        breaker=breaker,
        retry_budget=budget,
        max_in_flight={str(k): int(v) for k, v in limits.items()},
    )


def _amount(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def parse_spend(raw: object) -> SpendSettings | None:
    """The ``spend:`` section, or None when there is none."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("invalid spend section", ["spend: must be a mapping"])
    known = {"limits", "reserve", "default_reserve"}
    problems = [f"spend.{k}: unknown setting" for k in sorted(set(raw) - known)]
    limits: dict[str, SpendLimit] = {}
    given = raw.get("limits") or {}
    if not isinstance(given, Mapping):
        problems.append(
            "spend.limits: must map keys (workflow:NAME, tenant:ID, tenant:*) to limits"
        )
        given = {}
    for key, entry in given.items():
        path = f"spend.limits.{key}"
        if not isinstance(key, str) or key.split(":", 1)[0] not in ("workflow", "tenant"):
            problems.append(f"{path}: key must be workflow:NAME, tenant:ID or tenant:*")
            continue
        if not isinstance(entry, Mapping) or not _amount(entry.get("amount")):
            problems.append(f"{path}.amount: required, a positive amount of currency")
            continue
        policy = entry.get("on_exhausted", "refuse")
        if policy not in {p.value for p in OnExhausted}:
            problems.append(f"{path}.on_exhausted: {policy!r} is not refuse or degrade")
            continue
        extra = set(entry) - {"amount", "window", "on_exhausted"}
        problems.extend(f"{path}.{k}: unknown setting" for k in sorted(extra))
        try:
            limits[key] = SpendLimit(
                float(entry["amount"]), str(entry.get("window", "hour")), OnExhausted(policy)
            )
        except ConfigError as exc:
            problems.append(f"{path}: {exc}")
    reserve = raw.get("reserve") or {}
    if not isinstance(reserve, Mapping) or not all(_amount(v) for v in reserve.values()):
        problems.append("spend.reserve: must map model names to amounts >= 0")
        reserve = {}
    default = raw.get("default_reserve", 0.01)
    if not _amount(default):
        problems.append("spend.default_reserve: must be an amount >= 0")
        default = 0.01
    if problems:
        raise ConfigError("invalid spend section", problems)
    return SpendSettings(
        limits=limits,
        reserve={str(k): float(v) for k, v in reserve.items()},
        default_reserve=float(default),
    )
