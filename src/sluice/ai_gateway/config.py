"""The ``gateway:`` section of ``sluice.yaml``: model groups, limits, cache, idempotency, SLO.

::

    gateway:
      models:                          # what clients send as "model"
        chat:                          # a group: deployments tried in order (fallback)
          - name: primary              # names the breaker (gateway:primary) and the price
            base_url: http://127.0.0.1:8900/v1
            model: sim-tfidf           # the provider's model id
            api_key_env: PRIMARY_KEY   # optional; read once from the environment
            # or: api_key: ${secret:primary_key}  (a secret of the store)
            timeout_s: 30
            max_connections: 64
            price_as: sim-small        # optional: the prices entry (default: name)
          - {name: backup, base_url: http://127.0.0.1:8901/v1, model: sim-tfidf}
      limits:
        default: {requests_per_s: 50, burst: 100, tokens_per_min: 200000}
        tenants:
          acme: {requests_per_s: 500, burst: 1000, tokens_per_min: 2000000}
      cache: {enabled: true, ttl_s: 300, max_entries: 10000}   # + every setting of caches:
      idempotency: {ttl_s: 86400, max_entries: 10000, wait_s: 60}
      slo: {p95_ms: 5000, error_rate: 0.2, policy: fail_closed}   # per group
      max_body_bytes: 1048576
      reserve_output_tokens: 256       # output tokens a budget reservation assumes

The gateway shares the app's machinery rather than configuring its own: circuit breakers
come from the app's registry (``reliability.breaker`` settings; one breaker per deployment,
``gateway:NAME``), spend budgets from the app's ``spend:`` limits (``tenant:ID`` and
``tenant:*``: one budget per tenant for its workflows and its gateway calls), prices from
``prices:`` (per deployment name or ``price_as``; required for every deployment when the app
has spend limits), and the cache's settings are those of every cache
(:class:`~sluice.cache.config.CacheSettings`: ``max_entries``, ``max_mb``, ``ttl_s``,
``backend``, ``prefix``, ``max_value_kb``), with ``backend: auto`` by default: on the app's
KV when it is shared (Redis), so every gateway process answers from one cache, else in
process. ``max_bytes`` is still read (deprecated: ``max_mb``). Idempotency keys follow the
same rule. Every problem is collected and raised in one
:class:`~sluice.errors.ConfigError`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sluice.cache.completions import DEFAULT_COMPLETION_TTL_S
from sluice.cache.config import (
    AUTO_BACKENDS,
    BACKEND_ENV,
    BACKENDS,
    FIELDS,
    CacheSettings,
    parse_cache,
)
from sluice.errors import ConfigError
from sluice.kv.limiter import Rate
from sluice.models.prices import PriceTable
from sluice.reliability.slo_guard import SloPolicy, SloSettings

_DEPLOYMENT_KEYS = frozenset(
    {
        "name",
        "base_url",
        "model",
        "api_key",
        "api_key_env",
        "timeout_s",
        "max_connections",
        "price_as",
    }
)
_LIMIT_KEYS = frozenset({"requests_per_s", "burst", "tokens_per_min"})
_TOP_KEYS = frozenset(
    {
        "models",
        "limits",
        "cache",
        "idempotency",
        "slo",
        "max_body_bytes",
        "reserve_output_tokens",
        "max_response_bytes",
    }
)


@dataclass(frozen=True, slots=True)
class Deployment:
    """One provider endpoint serving a model; ``name`` is unique across the gateway."""

    name: str
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr
    timeout_s: float = 30.0
    max_connections: int = 64
    price_as: str = ""


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """Requests per second (token bucket) and model tokens per minute (fixed window)."""

    requests_per_s: float | None = None
    burst: float | None = None
    tokens_per_min: int | None = None

    @property
    def rate(self) -> float:
        """Requests per second (the token bucket's refill rate)."""
        return self.requests_per_s or 0.0

    @property
    def bucket(self) -> float:
        """The bucket size: ``burst``, or one second's worth of requests."""
        return self.burst or max(1.0, self.rate)

    @property
    def request_rate(self) -> Rate:
        """The request bucket, as the rate limiter takes it."""
        return Rate(self.rate, self.bucket)


#: The gateway's cache when the section says nothing: off; when on, a five-minute TTL, on the
#: app's KV when that is shared (Redis), else in process.
DEFAULT_CACHE = CacheSettings(
    max_entries=10_000,
    max_mb=64.0,
    ttl_s=DEFAULT_COMPLETION_TTL_S,
    backend="auto",
    prefix="cache:gateway:",
    enabled=False,
)
_CACHE_KEYS = FIELDS | {"enabled", "max_bytes"}


@dataclass(frozen=True, slots=True)
class IdempotencySettings:
    """How long a first answer is kept for replays, how many, how long a repeat waits."""

    ttl_s: float = 86_400.0
    max_entries: int = 10_000
    wait_s: float = 60.0


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the AI gateway is configured with."""

    groups: Mapping[str, tuple[Deployment, ...]]
    default_limits: TenantLimits = TenantLimits()
    tenant_limits: Mapping[str, TenantLimits] = field(default_factory=dict)
    cache: CacheSettings = DEFAULT_CACHE
    idempotency: IdempotencySettings = IdempotencySettings()
    slo: SloSettings | None = None
    prices: PriceTable = field(default_factory=lambda: PriceTable({}))
    max_body_bytes: int = 1 << 20
    max_response_bytes: int = 8 << 20
    reserve_output_tokens: int = 256

    def limits_for(self, tenant: str) -> TenantLimits:
        """The tenant's own limits, or the default ones."""
        return self.tenant_limits.get(tenant, self.default_limits)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> None:
    value = raw.get(key)
    if value is not None and (not _number(value) or value <= 0):
        problems.append(f"{where}.{key}: must be a positive number, got {value!r}")


def _mapping(value: Any, where: str, problems: list[str]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{where}: must be a mapping")
        return {}
    return value


def _unknown(
    raw: Mapping[str, Any], known: frozenset[str], where: str, problems: list[str]
) -> None:
    problems.extend(f"{where}.{key}: unknown setting" for key in raw if key not in known)


def _deployment(
    raw: Any, where: str, environ: Mapping[str, str], problems: list[str]
) -> Deployment | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping with name, base_url and model")
        return None
    _unknown(raw, _DEPLOYMENT_KEYS, where, problems)
    before = len(problems)
    for key in ("name", "base_url", "model"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            problems.append(f"{where}.{key}: required (a non-empty string)")
    base_url = raw.get("base_url")
    if isinstance(base_url, str) and not base_url.startswith(("http://", "https://")):
        problems.append(f"{where}.base_url: must start with http:// or https://")
    _positive(raw, "timeout_s", where, problems)
    connections = raw.get("max_connections", 64)
    if not isinstance(connections, int) or isinstance(connections, bool) or connections < 1:
        problems.append(f"{where}.max_connections: must be a positive integer")
    env = raw.get("api_key_env")
    if env is not None and (not isinstance(env, str) or env not in environ):
        problems.append(f"{where}.api_key_env: environment variable {env} is not set")
    api_key = raw.get("api_key")
    if api_key is not None and not (isinstance(api_key, str) and api_key):
        problems.append(f"{where}.api_key: must be a non-empty string (${{secret:NAME}})")
    if len(problems) > before:
        return None
    return Deployment(
        name=raw["name"],
        base_url=raw["base_url"].rstrip("/"),
        model=raw["model"],
        api_key=api_key or (environ[env] if env else None),
        timeout_s=float(raw.get("timeout_s", 30.0)),
        max_connections=int(connections),
        price_as=str(raw.get("price_as") or raw["name"]),
    )


def _limits(raw: Any, where: str, problems: list[str]) -> TenantLimits:
    spec = _mapping(raw, where, problems)
    _unknown(spec, _LIMIT_KEYS, where, problems)
    before = len(problems)
    for key in _LIMIT_KEYS:
        _positive(spec, key, where, problems)
    if spec.get("burst") is not None and spec.get("requests_per_s") is None:
        problems.append(f"{where}.burst: needs requests_per_s")
    if len(problems) > before:
        return TenantLimits()
    tokens = spec.get("tokens_per_min")
    return TenantLimits(
        requests_per_s=spec.get("requests_per_s"),
        burst=spec.get("burst"),
        tokens_per_min=None if tokens is None else int(tokens),
    )


def _dataclass_from(
    cls: Any, raw: Any, where: str, problems: list[str], **convert: Any
) -> Any | None:
    spec = dict(_mapping(raw, where, problems))
    known = {f.name for f in fields(cls)}
    bad = [f"{where}.{key}: unknown setting" for key in spec if key not in known]
    if bad:
        problems.extend(bad)
        return None
    try:
        for key, to in convert.items():
            if key in spec:
                spec[key] = to(spec[key])
        return cls(**spec)
    except ConfigError as exc:
        problems.extend(f"{where}: {p}" for p in exc.problems or [str(exc)])
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")
    return None


def _cache(raw: Any, environ: Mapping[str, str], problems: list[str]) -> CacheSettings:
    """``gateway.cache``: the settings of every cache (:func:`sluice.cache.parse_cache`)
    and ``enabled``; ``max_bytes`` (before the caches shared one format) still reads."""
    where = "gateway.cache"
    spec = dict(_mapping(raw, where, problems))
    _unknown(spec, _CACHE_KEYS, where, problems)
    enabled = spec.pop("enabled", False)
    if not isinstance(enabled, bool):
        problems.append(f"{where}.enabled: must be true or false")
    if "max_bytes" in spec:
        max_bytes = spec.pop("max_bytes")
        warnings.warn(
            f"{where}.max_bytes is deprecated: write max_mb (megabytes), as every cache does",
            DeprecationWarning,
            stacklevel=3,
        )
        if "max_mb" in spec:
            problems.append(f"{where}.max_bytes: give max_mb or max_bytes, not both")
        elif _number(max_bytes) and max_bytes > 0:
            spec["max_mb"] = max_bytes / (1024 * 1024)
        else:
            problems.append(f"{where}.max_bytes: must be a positive number, got {max_bytes!r}")
    for key in [k for k in spec if k not in FIELDS]:
        del spec[key]  # reported above
    override = environ.get(BACKEND_ENV) or None
    if override is not None and override not in BACKENDS:
        problems.append(f"{BACKEND_ENV}: expected one of {', '.join(BACKENDS)}")
        override = None
    settings = parse_cache(
        spec, where, DEFAULT_CACHE, problems, backend=override, backends=AUTO_BACKENDS
    )
    return replace(settings, enabled=enabled is True)


def parse_gateway(
    raw: Any,
    prices: Any = None,
    environ: Mapping[str, str] | None = None,
    *,
    priced: bool = False,
) -> GatewaySettings:
    """Validate the ``gateway`` section (and the app's ``prices``) into settings.

    ``priced``: the app has spend limits, so every deployment needs a price.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    section = _mapping(raw, "gateway", problems)
    _unknown(section, _TOP_KEYS, "gateway", problems)
    groups: dict[str, tuple[Deployment, ...]] = {}
    names: set[str] = set()
    models = _mapping(section.get("models"), "gateway.models", problems)
    if not models:
        problems.append("gateway.models: name at least one model group")
    for group, entries in models.items():
        where = f"gateway.models.{group}"
        if not isinstance(entries, list) or not entries:
            problems.append(f"{where}: must be a non-empty list of deployments")
            continue
        built = []
        for i, entry in enumerate(entries):
            deployment = _deployment(entry, f"{where}[{i}]", env, problems)
            if deployment is None:
                continue
            if deployment.name in names:
                problems.append(f"{where}[{i}].name: {deployment.name!r} is used twice")
            names.add(deployment.name)
            built.append(deployment)
        groups[str(group)] = tuple(built)
    limits = _mapping(section.get("limits"), "gateway.limits", problems)
    _unknown(limits, frozenset({"default", "tenants"}), "gateway.limits", problems)
    default_limits = _limits(limits.get("default"), "gateway.limits.default", problems)
    tenant_limits = {
        str(name): _limits(spec, f"gateway.limits.tenants.{name}", problems)
        for name, spec in _mapping(
            limits.get("tenants"), "gateway.limits.tenants", problems
        ).items()
    }
    cache = _cache(section.get("cache"), env, problems)
    idem = _dataclass_from(
        IdempotencySettings, section.get("idempotency"), "gateway.idempotency", problems
    )
    slo = None
    if section.get("slo") is not None:
        slo = _dataclass_from(
            SloSettings, section["slo"], "gateway.slo", problems, policy=SloPolicy
        )
    for key in ("max_body_bytes", "max_response_bytes", "reserve_output_tokens"):
        _positive(section, key, "gateway", problems)
    try:
        table = PriceTable.from_config(prices)
    except ConfigError as exc:
        problems.extend(exc.problems)
        table = PriceTable({})
    if priced:
        for deployments in groups.values():
            problems.extend(
                f"prices.{d.price_as}: spend limits need a price for deployment {d.name!r}"
                for d in deployments
                if d.price_as not in table
            )
    if problems:
        raise ConfigError("invalid gateway settings", problems)
    return GatewaySettings(
        groups=groups,
        default_limits=default_limits,
        tenant_limits=tenant_limits,
        cache=cache,
        idempotency=idem or IdempotencySettings(),
        slo=slo,
        prices=table,
        max_body_bytes=int(section.get("max_body_bytes", 1 << 20)),
        max_response_bytes=int(section.get("max_response_bytes", 8 << 20)),
        reserve_output_tokens=int(section.get("reserve_output_tokens", 256)),
    )
