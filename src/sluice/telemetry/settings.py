"""The ``telemetry:`` section of ``sluice.yaml``: tracing, the span store, the ledger, logs.

::

    telemetry:
      tracing: true              # spans for ingress, steps, model calls and cache lookups
      sample_ratio: 1.0          # of new traces; a caller's sampled traceparent is honoured
      otlp_endpoint: http://collector:4318   # or OTEL_EXPORTER_OTLP_ENDPOINT; off when unset
      local_spans: true          # keep spans in the app's store for `sluice trace`
      max_spans: 200000          # the span store's bound; the oldest go first
      span_ttl_s: 604800         # spans older than this are purged (7 days)
      cost_ttl_s: 7776000        # ledger rows older than this are purged (90 days)
      log_prompts: false         # opt in to logging model prompts (always PII-masked)
      ledger: true               # one cost-ledger row per model call (`sluice costs`)

The sample ratio defaults to 1 on the embedded store (SQLite: one process, spans are cheap to
keep) and to 0.1 on PostgreSQL (a fleet of processes; keep one trace in ten).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.errors import ConfigError

_KNOWN = {
    "tracing", "sample_ratio", "otlp_endpoint", "local_spans", "max_spans", "span_ttl_s",
    "cost_ttl_s", "log_prompts", "buffer", "flush_ms", "service_name", "ledger",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """Validated telemetry settings; see the module docstring for each field."""

    tracing: bool = True
    sample_ratio: float = 1.0
    otlp_endpoint: str | None = None
    local_spans: bool = True
    max_spans: int = 200_000
    span_ttl_s: float = 7 * 86_400.0
    cost_ttl_s: float = 90 * 86_400.0
    log_prompts: bool = False
    ledger: bool = True
    #: Spans and ledger rows waiting to be written; past it new ones are dropped and counted.
    buffer: int = 50_000
    flush_ms: int = 500
    service_name: str = "sluice"


def parse_telemetry(
    raw: Any, environ: Mapping[str, str], *, embedded: bool = True
) -> TelemetrySettings:
    """Validate the ``telemetry`` section (every problem at once); ``environ`` gives
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_SERVICE_NAME`` when the section does not."""
    spec: Mapping[str, Any] = raw or {}
    if not isinstance(spec, Mapping):
        raise ConfigError("telemetry: must be a mapping")
    problems = [f"telemetry.{key}: unknown setting" for key in spec if key not in _KNOWN]
    for key in ("tracing", "local_spans", "log_prompts", "ledger"):
        if key in spec and not isinstance(spec[key], bool):
            problems.append(f"telemetry.{key}: must be true or false")
    for key in ("max_spans", "buffer", "flush_ms"):
        value = spec.get(key)
        if value is not None and (type(value) is not int or value < 1):
            problems.append(f"telemetry.{key}: must be a positive integer, got {value!r}")
    for key in ("span_ttl_s", "cost_ttl_s"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value <= 0):
            problems.append(f"telemetry.{key}: must be a positive number, got {value!r}")
    ratio = spec.get("sample_ratio", 1.0 if embedded else 0.1)
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
        problems.append(f"telemetry.sample_ratio: must be within 0..1, got {ratio!r}")
    endpoint = spec.get("otlp_endpoint") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    if endpoint is not None and not str(endpoint).startswith(("http://", "https://")):
        problems.append(f"telemetry.otlp_endpoint: must be an http(s) URL, got {endpoint!r}")
    if problems:
        raise ConfigError("invalid telemetry settings", problems)
    defaults = TelemetrySettings()
    return TelemetrySettings(
        tracing=bool(spec.get("tracing", True)),
        sample_ratio=float(ratio),
        otlp_endpoint=None if endpoint is None else str(endpoint).rstrip("/"),
        local_spans=bool(spec.get("local_spans", True)),
        max_spans=int(spec.get("max_spans", defaults.max_spans)),
        span_ttl_s=float(spec.get("span_ttl_s", defaults.span_ttl_s)),
        cost_ttl_s=float(spec.get("cost_ttl_s", defaults.cost_ttl_s)),
        log_prompts=bool(spec.get("log_prompts", False)),
        ledger=bool(spec.get("ledger", True)),
        buffer=int(spec.get("buffer", defaults.buffer)),
        flush_ms=int(spec.get("flush_ms", defaults.flush_ms)),
        service_name=str(
            spec.get("service_name") or environ.get("OTEL_SERVICE_NAME") or defaults.service_name
        ),
    )
