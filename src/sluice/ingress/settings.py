"""Ingress settings from the app config: limits, idempotency window, rate limits, sources.

::

    ingress:
      max_body_bytes: 1048576
      max_depth: 32
      max_fields: 2000
      idempotency_window_s: 86400
    rate_limits: {default: {rate: 100, burst: 200}}   # see ingress/ratelimit.py
    sources:
      helpdesk:
        workflow: triage
        tenant: acme
        secrets_env: SLUICE_HELPDESK_SECRETS     # space-separated whsec_... secrets
        mapping: {text: $.ticket.description}

Secrets may also be listed inline (``secrets: [whsec_...]``), which suits tests and demos only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice.config import AppSettings, unknown_problems
from sluice.errors import ConfigError
from sluice.ingress.limits import Limits
from sluice.ingress.ratelimit import RatePolicy


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """One webhook source: where its events go and how they are checked and mapped."""

    name: str
    workflow: str
    tenant: str
    secrets: tuple[str, ...]
    mapping: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class IngressSettings:
    """Everything the gateway is configured with."""

    limits: Limits = field(default_factory=Limits)
    idempotency_window_s: float = 86_400.0
    rate_limits: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, SourceSettings] = field(default_factory=dict)


#: The keys of the ingress section and of one source.
_INGRESS_KEYS = ("max_body_bytes", "max_depth", "max_fields", "idempotency_window_s", "server")
_SOURCE_KEYS = ("workflow", "tenant", "secrets", "secrets_env", "mapping")


def _positive(raw: Mapping[str, Any], key: str, default: float, problems: list[str]) -> float:
    value = raw.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        problems.append(f"ingress.{key}: must be a positive number")
        return default
    return float(value)


def parse_ingress(settings: AppSettings) -> IngressSettings:
    """Read the ingress sections of ``settings.extra``; every problem is reported at once."""
    problems: list[str] = []
    raw = settings.extra.get("ingress") or {}
    base = Limits()
    limits = Limits(
        max_body_bytes=int(_positive(raw, "max_body_bytes", base.max_body_bytes, problems)),
        max_depth=int(_positive(raw, "max_depth", base.max_depth, problems)),
        max_fields=int(_positive(raw, "max_fields", base.max_fields, problems)),
    )
    window = _positive(raw, "idempotency_window_s", 86_400.0, problems)
    problems += unknown_problems(raw, _INGRESS_KEYS, "ingress.", "setting")
    sources: dict[str, SourceSettings] = {}
    for name, spec in (settings.extra.get("sources") or {}).items():
        where = f"sources.{name}"
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        problems += unknown_problems(spec, _SOURCE_KEYS, f"{where}.", "setting")
        secrets = list(spec.get("secrets") or [])
        env_name = spec.get("secrets_env")
        if env_name:
            if env_name not in settings.env:
                problems.append(f"{where}.secrets_env: {env_name} is not set")
            secrets += settings.env.get(env_name, "").split()
        if not secrets:
            problems.append(f"{where}: give secrets or secrets_env")
        if not spec.get("workflow"):
            problems.append(f"{where}.workflow: required")
        sources[str(name)] = SourceSettings(
            name=str(name),
            workflow=str(spec.get("workflow", "")),
            tenant=str(spec.get("tenant", "default")),
            secrets=tuple(secrets),
            mapping=spec.get("mapping"),
        )
    rate_limits = settings.extra.get("rate_limits") or {}
    try:
        RatePolicy(rate_limits)  # every problem of the section at load, with the others
    except ConfigError as exc:
        problems.extend(exc.problems or [str(exc)])
    if problems:
        raise ConfigError("invalid ingress settings", problems)
    return IngressSettings(limits, window, rate_limits, sources)
