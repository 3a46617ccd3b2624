"""Prometheus metrics of one app, served at ``GET /metrics``.

Counters and histograms are updated where things happen (the HTTP layer, the step executor,
the classify step); gauges (queue depth, in flight, cache hits) are read from the live objects
at scrape time, so they cost nothing between scrapes. Every metric lives in the app's own
registry, so two apps in one process (tests) never share numbers.

Label cardinality is bounded: the first ``max_tenants`` tenants keep their names and the rest
fold into ``other``; a feature flag is one of the ``flags`` the app declares (``none`` when a
request names none, ``other`` when it names an undeclared one); routes are the API's route
templates, never raw paths; workflows, versions, steps, models, pools, caches and breakers come
from the app's own config. Declared in ``sluice.yaml``::

    metrics: {max_tenants: 100, flags: [new-prompt, large-first]}
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sluice.errors import ConfigError

OTHER = "other"
NO_FLAG = "none"
MAX_FLAGS = 20
_FLAG = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ROUTES = (
    ("/v1/hooks/", "hooks"),
    ("/v1/workflows/", "runs:start"),
    ("/v1/runs/", "runs:get"),
    ("/v1/indexes/", "indexes"),
    ("/v1/status", "status"),
    ("/v1/chat/completions", "chat:completions"),
    ("/v1/models", "models"),
    ("/metrics", "metrics"),
    ("/healthz", "healthz"),
    ("/readyz", "readyz"),
    ("/openapi.json", "openapi"),
)


def route_label(path: str) -> str:
    """The route template a path belongs to (bounded; unknown paths are ``other``)."""
    for prefix, label in _ROUTES:
        if path.startswith(prefix):
            return label
    return OTHER


_MAX_CACHED_SERIES = 10_000


@dataclass(frozen=True, slots=True)
class ModelSeries:
    """The counters of model calls for one label set."""

    calls: Counter
    cost: Counter
    input_tokens: Counter
    output_tokens: Counter

    def count(self, cost: float, input_tokens: int, output_tokens: int) -> None:
        """Count one call."""
        self.calls.inc()
        self.cost.inc(cost)
        self.input_tokens.inc(input_tokens)
        self.output_tokens.inc(output_tokens)


class Metrics:
    """The metrics of one app."""

    def __init__(self, max_tenants: int = 100, flags: Collection[str] = ()) -> None:
        if len(flags) > MAX_FLAGS:
            raise ConfigError(f"metrics.flags: at most {MAX_FLAGS} flags, got {len(flags)}")
        self.registry = CollectorRegistry(auto_describe=True)
        self._max_tenants = max_tenants
        self.flags = frozenset(flags)
        self._tenants: set[str] = set()
        self._model_series: dict[tuple[str, ...], ModelSeries] = {}
        self._lock = threading.Lock()
        counter = self._counter
        timer = self._histogram
        self.requests = counter("sluice_http_requests", "HTTP requests answered", "route", "status")
        self.request_seconds = timer("sluice_http_request_duration_seconds",
                                     "Time to answer an HTTP request", "route")  # fmt: skip
        # Refused by the server before the app saw a request (deadlines, caps, malformed
        # requests): the reasons are ingress/server.py's REFUSAL_REASONS.
        self.refused = counter("sluice_http_refused", "Refused by the HTTP server", "reason")
        event = ("tenant", "workflow")
        self.accepted = counter("sluice_events_accepted", "Accepted at ingress",
                                *event, "source", "flag")  # fmt: skip
        self.quarantined = counter("sluice_events_quarantined", "Malformed, kept aside",
                                   *event, "source")  # fmt: skip
        self.finished = counter("sluice_events_finished", "Events that reached an end",
                                *event, "version", "outcome", "flag")  # fmt: skip
        self.event_seconds = timer("sluice_event_duration_seconds", "Accept to end, per event",
                                   *event, "version", "flag")  # fmt: skip
        self.step_seconds = timer("sluice_step_duration_seconds", "One step attempt",
                                  "workflow", "version", "step", "outcome")  # fmt: skip
        call = (*event, "version", "step", "model", "flag")
        self.model_calls = counter(
            "sluice_model_calls", "Calls to models (cache hits cost 0)", *call
        )
        self.model_cost = counter("sluice_model_cost", "Cost of model calls", *call)
        self.model_input_tokens = counter("sluice_model_input_tokens", "Prompt tokens", *call)
        self.model_output_tokens = counter("sluice_model_output_tokens", "Answer tokens", *call)
        self.escalations = counter("sluice_escalations", "Past the cascade's first tier",
                                   *event, "version", "flag")  # fmt: skip
        self.fallbacks = counter(
            "sluice_model_fallbacks",
            "Escalations not made, the cheaper answer kept (breaker, bulkhead, slo, spend)",
            "workflow", "version", "step", "model", "reason",
        )  # fmt: skip
        alert = ("workflow", "model", "signal")
        self.spike_alerts = counter("sluice_spike_alerts", "Cost and token spikes raised", *alert)
        self.alert_deliveries = counter(
            "sluice_alert_deliveries", "Alert webhook posts by outcome", "outcome"
        )

    def model_series(self, *labels: str) -> ModelSeries:
        """The call, cost and token counters of one label set (tenant, workflow, version, step,
        model, flag), kept once made: resolving labels costs more than the increments."""
        series = self._model_series.get(labels)
        if series is None:
            series = ModelSeries(
                self.model_calls.labels(*labels),
                self.model_cost.labels(*labels),
                self.model_input_tokens.labels(*labels),
                self.model_output_tokens.labels(*labels),
            )
            if len(self._model_series) < _MAX_CACHED_SERIES:  # labels are bounded; so is this
                self._model_series[labels] = series
        return series

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def _histogram(self, name: str, doc: str, *labels: str) -> Histogram:
        return Histogram(name, doc, list(labels), buckets=_LATENCY_BUCKETS, registry=self.registry)

    def tenant(self, name: str) -> str:
        """``name`` while fewer than ``max_tenants`` are known, else ``other``."""
        if name in self._tenants:
            return name
        with self._lock:
            if len(self._tenants) < self._max_tenants:
                self._tenants.add(name)
                return name
        return OTHER

    def flag(self, value: object) -> str:
        """The label of a feature flag: declared ones keep their name, ``none`` when absent."""
        if value is None:
            return NO_FLAG
        return value if isinstance(value, str) and value in self.flags else OTHER

    def configure(self, section: object) -> None:
        """Apply the ``metrics:`` section of ``sluice.yaml`` (absent: the defaults)."""
        if section is None:
            return
        if not isinstance(section, Mapping):
            raise ConfigError("metrics: expected {max_tenants: N, flags: [name, ...]}")
        problems = [f"metrics.{key}: unknown setting" for key in section
                    if key not in ("max_tenants", "flags")]  # fmt: skip
        tenants, flags = section.get("max_tenants", self._max_tenants), section.get("flags", [])
        if not isinstance(tenants, int) or isinstance(tenants, bool) or tenants < 1:
            problems.append("metrics.max_tenants: must be a positive integer")
        if not isinstance(flags, list) or not all(
            isinstance(f, str) and _FLAG.match(f) for f in flags
        ):
            problems.append("metrics.flags: must list names of letters, digits, '.', '_', '-'")
        elif len(flags) > MAX_FLAGS:
            problems.append(f"metrics.flags: at most {MAX_FLAGS} flags, got {len(flags)}")
        if problems:
            raise ConfigError("invalid metrics section", problems)
        self._max_tenants = tenants
        self.flags = frozenset(flags)

    def watch(self, read: Callable[[], Iterator[Metric]]) -> None:
        """Add gauges read from live objects at every scrape."""
        self.registry.register(_Gauges(read))

    def render(self) -> bytes:
        """The text exposition format."""
        return bytes(generate_latest(self.registry))


class _Gauges(Collector):
    def __init__(self, read: Callable[[], Iterator[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        return self._read()


def runtime_gauges(stats: Callable[[], Mapping[str, Mapping[str, int]]]) -> Iterator[Metric]:
    """Queue depth, in flight and cap per pool, from ``Runtime.stats``."""
    depth = GaugeMetricFamily("sluice_queue_depth", "Ready jobs waiting per pool", labels=["pool"])
    busy = GaugeMetricFamily("sluice_in_flight", "Steps running now per pool", labels=["pool"])
    cap = GaugeMetricFamily("sluice_pool_concurrency", "Concurrency cap per pool", labels=["pool"])
    for pool, figures in stats().items():
        depth.add_metric([pool], figures["queue_depth"])
        busy.add_metric([pool], figures["in_flight"])
        cap.add_metric([pool], figures["concurrency"])
    yield from (depth, busy, cap)


class CacheFigures(Protocol):
    """The counters a cache reports (:class:`sluice.cache.stats.CacheStats` is one)."""

    @property
    def hits(self) -> int:
        """Hits since start."""

    @property
    def misses(self) -> int:
        """Misses since start."""

    @property
    def entries(self) -> int:
        """Entries held now."""

    @property
    def errors(self) -> int:
        """Failed calls to the cache's store since start."""


class ReportsCacheFigures(Protocol):
    """A cache (:class:`sluice.cache.stats.ReportsStats` is one)."""

    def stats(self) -> CacheFigures:
        """Its counters now."""


def cache_gauges(caches: Mapping[str, ReportsCacheFigures]) -> Iterator[Metric]:
    """Hits, misses, entries and store errors of every cache, by name.

    Hits, misses and errors are running totals, exported as counters (``_total``) so that
    ``rate()`` reads them right; entries is a gauge.
    """
    hits = CounterMetricFamily("sluice_cache_hits", "Cache hits since start", labels=["cache"])
    misses = CounterMetricFamily("sluice_cache_misses", "Cache misses since start",
                                 labels=["cache"])  # fmt: skip
    entries = GaugeMetricFamily("sluice_cache_entries", "Entries held", labels=["cache"])
    errors = CounterMetricFamily(
        "sluice_cache_errors",
        "Failed calls to the cache's store (served as misses)",
        labels=["cache"],
    )
    for name, cache in caches.items():
        figures = cache.stats()
        hits.add_metric([name], figures.hits)
        misses.add_metric([name], figures.misses)
        entries.add_metric([name], figures.entries)
        errors.add_metric([name], figures.errors)
    yield from (hits, misses, entries, errors)


def state_gauge(
    name: str, doc: str, label: str, current: Iterable[tuple[str, Enum]]
) -> GaugeMetricFamily:
    """One series per thing and state of its state enumeration, the current state's at 1.

    So ``NAME{state="open"} == 1`` selects the things in that state, and a state change
    never leaves a stale series behind.
    """
    family = GaugeMetricFamily(name, doc, labels=[label, "state"])
    for thing, state in current:
        for each in type(state):
            family.add_metric([thing, str(each.value)], 1.0 if each is state else 0.0)
    return family


def reliability_gauges(
    breakers: Iterable[tuple[str, Enum]], guards: Iterable[tuple[str, Enum]]
) -> Iterator[Metric]:
    """Breaker state per downstream and SLO-guard state per workflow (:func:`state_gauge`),
    from ``(downstream, state)`` and ``(workflow, state)`` pairs."""
    yield state_gauge(
        "sluice_breaker_state", "Circuit breaker state (1 = current)", "downstream", breakers
    )
    yield state_gauge("sluice_slo_guard_state", "SLO guard state (1 = current)", "workflow", guards)
