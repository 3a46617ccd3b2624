"""Cost and token spike alerts: each window's figures against a rolling baseline.

Configured in ``sluice.yaml`` (the section is optional; without it nothing is watched)::

    alerts:
      window_s: 60            # one evaluation window
      baseline_windows: 10    # the baseline is the median of this many past windows
      min_baseline: 3         # judged windows needed before anything can fire
      factor: 2.0             # fire when a window's figure exceeds baseline x factor
      min_calls: 20           # windows with fewer calls (or requests) are not judged
      signals: [cost_per_request, output_tokens_per_call]
      webhook: https://hooks.example.com/sluice   # optional; must be on outbound.allow
      queue: 100              # alerts waiting to be posted; past it they are dropped, counted

Two signals per (workflow, model), the pair being bounded by the app's own config:

- ``cost_per_request``: what the model cost in the window divided by the classify requests of
  the workflow in the window. A jump in tokens, in prices or in the escalation rate all show.
- ``output_tokens_per_call``: answer tokens per call actually made (cache hits left out). A
  model that starts rambling shows here before the bill does.

The detector is fed by the classify step, one :meth:`Alerts.record` per request with the
calls it made, rather than from metric deltas: the per-window figures are exact, cost a few
dictionary updates per request, and do not depend on scrape timing or on tenant labels folding
into ``other``. The fleet-wide view is Prometheus's job (``deploy/prometheus/alerts.yml``
compares the same counters across processes).

The baseline is the median of the last ``baseline_windows`` judged windows, not a mean: one
earlier spike cannot lift it, and a lasting change becomes the new normal after half of
``baseline_windows`` windows (the alert then resolves). A spike is announced once when it
starts and once when it ends - never repeated while it lasts - as a log event (logger
``sluice.alerts``, the figures in the message and in ``extra["alert"]``) and as one POST to the
webhook. Posts go through a bounded queue and are never retried: a lost post is logged and
counted (``sluice_alert_deliveries_total{outcome}``), and the log event remains the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from prometheus_client.core import GaugeMetricFamily, Metric

from sluice.errors import ConfigError
from sluice.outbound.egress import Egress, allowed
from sluice.outbound.policy import EgressDeniedError
from sluice.telemetry.metrics import Metrics
from sluice.telemetry.model_call import ModelCall

log = logging.getLogger("sluice.alerts")

COST_PER_REQUEST = "cost_per_request"
OUTPUT_TOKENS_PER_CALL = "output_tokens_per_call"
SIGNALS = (COST_PER_REQUEST, OUTPUT_TOKENS_PER_CALL)
#: (workflow, model) pairs watched at most; both come from config, this guards against a bug.
MAX_KEYS = 500

_FIELDS = {"window_s", "baseline_windows", "min_baseline", "factor", "min_calls", "signals",
           "webhook", "queue"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Validated ``alerts:`` settings; see the module docstring for each field."""

    window_s: float = 60.0
    baseline_windows: int = 10
    min_baseline: int = 3
    factor: float = 2.0
    min_calls: int = 20
    signals: tuple[str, ...] = SIGNALS
    webhook: str | None = None
    queue: int = 100

    @classmethod
    def from_config(cls, section: object, allow: frozenset[str] = frozenset()) -> AlertSettings:
        """Parse the section; every problem is reported at once, with its path."""
        if not isinstance(section, Mapping):
            raise ConfigError("alerts: expected a mapping (window_s, factor, webhook, ...)")
        problems = [f"alerts.{key}: unknown setting" for key in section if key not in _FIELDS]
        values: dict[str, Any] = {}
        for name, kind, low in (("window_s", float, 0.001), ("factor", float, 1.0)):
            if name in section:
                raw = section[name]
                if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < low:
                    problems.append(f"alerts.{name}: must be a number >= {low:g}")
                else:
                    values[name] = kind(raw)
        for name in ("baseline_windows", "min_baseline", "min_calls", "queue"):
            if name in section:
                raw = section[name]
                if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                    problems.append(f"alerts.{name}: must be a positive integer")
                else:
                    values[name] = raw
        if "signals" in section:
            signals = section["signals"]
            if not isinstance(signals, list) or not signals or not set(signals) <= set(SIGNALS):
                problems.append(f"alerts.signals: a non-empty list of {', '.join(SIGNALS)}")
            else:
                values["signals"] = tuple(signals)
        webhook = section.get("webhook")
        if webhook is not None:
            if not isinstance(webhook, str) or not webhook.startswith(("http://", "https://")):
                problems.append("alerts.webhook: must be an http(s) URL")
            elif not allowed(webhook, allow):
                problems.append(f"alerts.webhook: {webhook} is not on the egress allowlist")
            else:
                values["webhook"] = webhook
        settings = cls(**values)
        if settings.min_baseline > settings.baseline_windows:
            problems.append("alerts.min_baseline: must not exceed baseline_windows")
        if problems:
            raise ConfigError("invalid alerts section", problems)
        return settings


@dataclass(frozen=True, slots=True)
class SpikeAlert:
    """One change of an alert: ``firing`` when a figure jumps, ``resolved`` when it is back."""

    state: str
    workflow: str
    model: str
    signal: str
    value: float
    baseline: float
    factor: float
    samples: int
    at: float

    def describe(self) -> str:
        """A one-line summary with every figure, for logs and people."""
        return (
            f"{self.signal} spike {self.state}: workflow={self.workflow} model={self.model}"
            f" value={self.value:.6g} baseline={self.baseline:.6g} factor={self.factor:g}"
            f" samples={self.samples}"
        )


@dataclass(slots=True)
class _Tally:
    """One workflow's requests in the current window, and per model: calls, cost, tokens."""

    requests: int = 0
    calls: dict[str, list[float]] = field(default_factory=dict)


class SpikeDetector:
    """Per-window figures per (workflow, model) against the median of past windows.

    Pure bookkeeping, no clock: :meth:`evaluate` closes the current window, so a caller (the
    :class:`Alerts` service every ``window_s``, or a test) decides when windows end.
    """

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self._window: dict[str, _Tally] = {}
        self._keys = 0
        self._history: dict[tuple[str, str, str], deque[float]] = {}
        self.firing: dict[tuple[str, str, str], SpikeAlert] = {}
        self.judged = 0  # figures judged (or taken into the baseline) since start

    def record(self, workflow: str, calls: Sequence[ModelCall]) -> None:
        """Count one request of ``workflow`` and the model calls it made."""
        tally = self._window.get(workflow)
        if tally is None:
            tally = self._window[workflow] = _Tally()
        tally.requests += 1
        for call in calls:
            figures = tally.calls.get(call.model)
            if figures is None:
                if self._keys >= MAX_KEYS:
                    continue
                self._keys += 1
                figures = tally.calls[call.model] = [0, 0.0, 0]
            figures[1] += call.cost
            if not call.cached:  # a cache hit is not a call to the model
                figures[0] += 1
                figures[2] += call.usage.output_tokens

    def evaluate(self, now: float | None = None) -> list[SpikeAlert]:
        """Close the current window: judge its figures, then add them to the baseline."""
        at = time.time() if now is None else now
        window, self._window, self._keys = self._window, {}, 0
        changes: list[SpikeAlert] = []
        for workflow, tally in window.items():
            for model, (calls, cost, tokens) in tally.calls.items():
                figures = {
                    COST_PER_REQUEST: (cost / tally.requests, tally.requests),
                    OUTPUT_TOKENS_PER_CALL: (tokens / calls if calls else 0.0, int(calls)),
                }
                for signal in self.settings.signals:
                    value, samples = figures[signal]
                    if samples < self.settings.min_calls:
                        continue  # too few to judge, and too few to trust as a baseline
                    change = self._judge((workflow, model, signal), value, int(samples), at)
                    if change is not None:
                        changes.append(change)
        return changes

    def _judge(
        self, key: tuple[str, str, str], value: float, samples: int, at: float
    ) -> SpikeAlert | None:
        history = self._history.get(key)
        if history is None:
            if len(self._history) >= MAX_KEYS * len(SIGNALS):
                return None
            history = self._history[key] = deque(maxlen=self.settings.baseline_windows)
        change = None
        self.judged += 1
        if len(history) >= self.settings.min_baseline:
            baseline = statistics.median(history)
            spiking = baseline > 0 and value > baseline * self.settings.factor
            workflow, model, signal = key
            if spiking != (key in self.firing):
                state = "firing" if spiking else "resolved"
                change = SpikeAlert(state, workflow, model, signal, value, baseline,
                                    self.settings.factor, samples, at)  # fmt: skip
                if spiking:
                    self.firing[key] = change
                else:
                    del self.firing[key]
        history.append(value)
        return change


class Alerts:
    """The ``alerts`` service: a :class:`SpikeDetector` judged every ``window_s``, changes
    logged, counted and posted to the webhook through the egress session."""

    def __init__(
        self,
        settings: AlertSettings,
        egress: Egress | None = None,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.detector = SpikeDetector(settings)
        self._egress = egress
        self._metrics = metrics
        self._clock = clock
        self._queue: asyncio.Queue[SpikeAlert] = asyncio.Queue(maxsize=settings.queue)
        self._tasks: list[asyncio.Task[None]] = []
        self.deliveries: dict[str, int] = {"sent": 0, "failed": 0, "dropped": 0}
        self.raised: deque[SpikeAlert] = deque(maxlen=50)  # the last changes, for /v1/status
        if metrics is not None:
            metrics.watch(self._gauges)

    def record(self, workflow: str, calls: Sequence[ModelCall]) -> None:
        """Count one classify request of ``workflow`` and its model calls."""
        self.detector.record(workflow, calls)

    def evaluate(self) -> list[SpikeAlert]:
        """Close the current window now; log, count and queue every change for the webhook."""
        changes = self.detector.evaluate(self._clock())
        for alert in changes:
            self.raised.append(alert)
            level = logging.WARNING if alert.state == "firing" else logging.INFO
            log.log(level, "%s", alert.describe(),
                    extra={"workflow": alert.workflow, "alert": asdict(alert)})  # fmt: skip
            if self._metrics is not None and alert.state == "firing":
                self._metrics.spike_alerts.labels(alert.workflow, alert.model, alert.signal).inc()
            if self.settings.webhook is not None:
                try:
                    self._queue.put_nowait(alert)
                except asyncio.QueueFull:
                    self._delivered("dropped")
                    log.warning("alert webhook queue full: dropped %s", alert.describe())
        return changes

    async def flush(self) -> None:
        """Wait until every queued alert has been posted (or given up on)."""
        if self._tasks:
            await self._queue.join()

    async def start(self) -> None:
        """Start judging windows and posting alerts."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._every_window(), name="alerts-windows"),
                asyncio.create_task(self._post_queued(), name="alerts-webhook"),
            ]

    async def aclose(self) -> None:
        """Stop; alerts still queued are dropped (they were logged when raised)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def snapshot(self) -> dict[str, Any]:
        """What is firing, the last changes and the webhook deliveries, for ``/v1/status``."""
        return {
            "firing": [asdict(a) for a in self.detector.firing.values()],
            "recent": [asdict(a) for a in self.raised],
            "deliveries": dict(self.deliveries),
            "window_s": self.settings.window_s,
        }

    async def _every_window(self) -> None:
        while True:
            await asyncio.sleep(self.settings.window_s)
            try:
                self.evaluate()
            except Exception:  # a bad window must not end the loop
                log.exception("alerts: evaluating a window failed")

    async def _post_queued(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._post(alert)
            finally:
                self._queue.task_done()

    async def _post(self, alert: SpikeAlert) -> None:
        url = self.settings.webhook
        if url is None or self._egress is None:
            return
        body = {"type": "sluice.spike", **asdict(alert), "summary": alert.describe()}
        try:
            async with self._egress.session().post(url, json=body) as resp:
                ok = resp.status < 300
        except (aiohttp.ClientError, TimeoutError, EgressDeniedError) as exc:
            log.warning("alert webhook %s failed: %s", url, exc)
            ok = False
        else:
            if not ok:
                log.warning("alert webhook %s answered %d", url, resp.status)
        self._delivered("sent" if ok else "failed")

    def _delivered(self, outcome: str) -> None:
        self.deliveries[outcome] += 1
        if self._metrics is not None:
            self._metrics.alert_deliveries.labels(outcome).inc()

    def _gauges(self) -> Iterator[Metric]:
        active = GaugeMetricFamily("sluice_spike_alert_active", "Spike alerts firing now",
                                   labels=["workflow", "model", "signal"])  # fmt: skip
        for workflow, model, signal in list(self.detector.firing):
            active.add_metric([workflow, model, signal], 1.0)
        yield active
