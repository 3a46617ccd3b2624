"""``sluice top``: a live view of a running server, from its ``/metrics`` and ``/v1/status``.

Every ``--interval`` seconds it scrapes both and redraws one frame in place (plain ANSI, no
curses): event and HTTP rates, latency percentiles derived from the histogram buckets that
moved during the interval (as Prometheus's ``histogram_quantile`` does), model cost and tokens
per minute, cache hit rates, queue depth, in flight and cap per pool, breaker and SLO-guard
states, and the spike alerts firing. ``--once`` prints one frame (two scrapes an interval
apart) and exits, for scripts and tests.

Breakers and guards come from ``/v1/status`` when an API key is given (``--api-key`` or
``SLUICE_API_KEY``), otherwise from the state gauges of ``/metrics``; alerts from the
``sluice_spike_alert_active`` gauge.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import typer
from prometheus_client.parser import text_string_to_metric_families

from sluice.cli.common import fail
from sluice.errors import SluiceError

_CLEAR = "\x1b[H\x1b[2J"
_MAX_ROWS = 20  # per table: a frame must fit a terminal, whatever the server exports
Labels = Mapping[str, str]


@dataclass
class Scrape:
    """One look at a server: its samples by name, its status document, and when."""

    at: float
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    status: dict[str, Any] | None = None
    status_error: str | None = None

    def values(self, name: str, **match: str) -> Iterable[tuple[dict[str, str], float]]:
        """Samples of ``name`` whose labels include ``match``."""
        for labels, value in self.samples.get(name, ()):
            if all(labels.get(k) == v for k, v in match.items()):
                yield labels, value

    def total(self, name: str, **match: str) -> float:
        """The sum of the matching samples of ``name``."""
        return sum(value for _, value in self.values(name, **match))

    def by(self, name: str, label: str, **match: str) -> dict[str, float]:
        """Matching samples of ``name`` summed per value of ``label``."""
        sums: dict[str, float] = defaultdict(float)
        for labels, value in self.values(name, **match):
            sums[labels.get(label, "")] += value
        return dict(sums)


def parse_scrape(text: str, at: float) -> Scrape:
    """Parse the Prometheus text format into a :class:`Scrape`."""
    scrape = Scrape(at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scrape.samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return scrape


def fetch(client: httpx.Client, api_key: str | None) -> Scrape:
    """Scrape ``/metrics`` and, when possible, ``/v1/status``."""
    resp = client.get("/metrics")
    resp.raise_for_status()
    scrape = parse_scrape(resp.text, time.monotonic())
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        status = client.get("/v1/status", headers=headers)
    except httpx.HTTPError as exc:
        scrape.status_error = str(exc)
        return scrape
    if status.status_code == 200:
        scrape.status = status.json()
    else:
        scrape.status_error = f"/v1/status answered {status.status_code}"
    return scrape


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of a cumulative histogram ``{upper bound: count}``.

    Linear interpolation inside the bucket holding the rank, as ``histogram_quantile`` does;
    a rank in the ``+Inf`` bucket answers the highest finite bound. None without samples.
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def bucket_delta(new: Scrape, old: Scrape | None, name: str, **match: str) -> dict[float, float]:
    """The buckets of histogram ``name`` (matching labels) filled between two scrapes."""
    counts: dict[float, float] = defaultdict(float)
    for labels, value in new.values(f"{name}_bucket", **match):
        counts[float(labels["le"])] += value
    if old is not None:
        for labels, value in old.values(f"{name}_bucket", **match):
            counts[float(labels["le"])] -= value
    return dict(counts)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3g} ms"


def _pcts(buckets: Mapping[float, float]) -> str:
    return "  ".join(f"p{q}={_ms(quantile(q / 100, buckets))}" for q in (50, 95, 99))


def render(new: Scrape, old: Scrape | None, url: str) -> str:
    """One frame: rates and percentiles over the interval between ``old`` and ``new``."""
    span = new.at - old.at if old is not None else 0.0

    def rate(name: str, per: float = 1.0, **match: str) -> str:
        if old is None or span <= 0:
            return "-"
        return f"{(new.total(name, **match) - old.total(name, **match)) / span * per:.3g}"

    stamp = time.strftime("%H:%M:%S", time.gmtime())
    lines = [f"sluice top  {url}  interval {span:.1f} s  {stamp} UTC", ""]
    lines.append(
        f"EVENTS    accepted/s {rate('sluice_events_accepted_total')}"
        f"   done/s {rate('sluice_events_finished_total', outcome='done')}"
        f"   dead/s {rate('sluice_events_finished_total', outcome='dead')}"
        f"   quarantined/s {rate('sluice_events_quarantined_total')}"
    )
    http_errors = {
        group: _rate_sum(new, old, span, "sluice_http_requests_total", "status", statuses)
        for group, statuses in _status_groups(new).items()
    }
    lines.append(
        f"HTTP      req/s {rate('sluice_http_requests_total')}   "
        + "   ".join(f"{code}/s {value}" for code, value in http_errors.items())
    )
    answered = bucket_delta(new, old, "sluice_http_request_duration_seconds")
    lines.append(f"          latency  {_pcts(answered)}")
    lines.append("")
    lines.append("LATENCY   accept to end, per workflow (this interval)")
    for workflow in sorted(new.by("sluice_event_duration_seconds_count", "workflow"))[:_MAX_ROWS]:
        buckets = bucket_delta(new, old, "sluice_event_duration_seconds", workflow=workflow)
        lines.append(f"          {workflow:<20} {_pcts(buckets)}")
    lines.append("")
    lines.append(
        f"COST      per minute {rate('sluice_model_cost_total', 60)}"
        f"   tokens in/min {rate('sluice_model_input_tokens_total', 60)}"
        f"   out/min {rate('sluice_model_output_tokens_total', 60)}"
        f"   model calls/s {rate('sluice_model_calls_total')}"
        f"   escalations/s {rate('sluice_escalations_total')}"
    )
    lines.append("")
    lines.append(
        f"CACHES    {'cache':<20} {'hit rate':>9} {'hits':>10} {'misses':>10} {'entries':>9}"
    )
    hits = new.by("sluice_cache_hits_total", "cache")
    misses = new.by("sluice_cache_misses_total", "cache")
    entries = new.by("sluice_cache_entries", "cache")
    for cache in sorted(hits)[:_MAX_ROWS]:
        asked = hits[cache] + misses.get(cache, 0.0)
        ratio = f"{hits[cache] / asked:.1%}" if asked else "-"
        missed, held = misses.get(cache, 0.0), entries.get(cache, 0.0)
        lines.append(
            f"          {cache:<20} {ratio:>9} {hits[cache]:>10.0f} {missed:>10.0f} {held:>9.0f}"
        )
    lines.append("")
    lines.append(f"POOLS     {'pool':<20} {'queue':>7} {'in flight':>10} {'cap':>6}")
    depth, busy = new.by("sluice_queue_depth", "pool"), new.by("sluice_in_flight", "pool")
    cap = new.by("sluice_pool_concurrency", "pool")
    for pool in sorted(depth)[:_MAX_ROWS]:
        lines.append(f"          {pool:<20} {depth[pool]:>7.0f} {busy.get(pool, 0.0):>10.0f} "
                     f"{cap.get(pool, 0.0):>6.0f}")  # fmt: skip
    lines.append("")
    lines.extend(_states(new))
    return "\n".join(lines)


def _rate_sum(
    new: Scrape, old: Scrape | None, span: float, name: str, label: str, values: list[str]
) -> str:
    """The per-second rate of ``name`` summed over samples whose ``label`` is in ``values``."""
    if old is None or span <= 0:
        return "-"
    moved = sum(new.total(name, **{label: v}) - old.total(name, **{label: v}) for v in values)
    return f"{moved / span:.3g}"


def _status_groups(scrape: Scrape) -> dict[str, list[str]]:
    """HTTP statuses seen, grouped as the view shows them: 429, 503, other 4xx, other 5xx."""
    seen = {labels.get("status", "") for labels, _ in scrape.values("sluice_http_requests_total")}
    groups: dict[str, list[str]] = {"4xx": [], "429": [], "5xx": [], "503": []}
    for status in seen:
        if status in ("429", "503"):
            groups[status].append(status)
        elif status[:1] in ("4", "5"):
            groups[status[0] + "xx"].append(status)
    return groups


def _states(scrape: Scrape) -> list[str]:
    """Breaker, SLO-guard and alert lines, from the status document or else the gauges."""
    status = scrape.status
    if status is not None:
        breakers = [(b["name"], b["state"]) for b in status.get("breakers", [])]
        guards = [(g["workflow"], g["state"]) for g in status.get("slo_guards", [])]
    else:
        breakers = _current(scrape, "sluice_breaker_state", "downstream")
        guards = _current(scrape, "sluice_slo_guard_state", "workflow")
    alerts = [
        f"{labels['workflow']}/{labels['model']} {labels['signal']}"
        for labels, value in scrape.values("sluice_spike_alert_active")
        if value > 0
    ]
    lines = [
        "BREAKERS  " + ("  ".join(f"{n} {s}" for n, s in breakers[:_MAX_ROWS]) or "none"),
        "GUARDS    " + ("  ".join(f"{w} {s}" for w, s in guards[:_MAX_ROWS]) or "none"),
        "ALERTS    " + ("  ".join(alerts[:_MAX_ROWS]) or "none firing"),
    ]
    if scrape.status_error:
        lines.append(f"          ({scrape.status_error}; states from /metrics)")
    return lines


def _current(scrape: Scrape, name: str, key: str) -> list[tuple[str, str]]:
    return sorted(
        (labels[key], labels["state"]) for labels, value in scrape.values(name) if value > 0
    )


def top(
    url: Annotated[str, typer.Option(help="Base URL of a running `sluice serve`.")] = (
        "http://127.0.0.1:8000"
    ),
    interval: Annotated[float, typer.Option(help="Seconds between frames.", min=0.1)] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    api_key: Annotated[
        str | None, typer.Option(help="For /v1/status (default: $SLUICE_API_KEY).")
    ] = None,
) -> None:
    """A live view of a running server: rates, latency, cost, caches, queues, breakers."""
    key = api_key or os.environ.get("SLUICE_API_KEY")
    base = url.rstrip("/")
    try:
        with httpx.Client(base_url=base, timeout=5.0) as client:
            previous: Scrape | None = fetch(client, key)
            while True:
                time.sleep(interval)
                try:
                    current = fetch(client, key)
                except httpx.HTTPError as exc:
                    if once:
                        raise
                    # A restarting server must not end the view: say so and keep polling.
                    sys.stdout.write(f"{_CLEAR}cannot read {base}: {exc}; retrying\n")
                    sys.stdout.flush()
                    previous = None  # its counters may restart: rates resume from the next scrape
                    continue
                if previous is None:
                    previous = current
                    continue
                frame = render(current, previous, base)
                if once:
                    typer.echo(frame)
                    return
                sys.stdout.write(_CLEAR + frame + "\n")
                sys.stdout.flush()
                previous = current
    except httpx.HTTPError as exc:
        raise fail(SluiceError(f"cannot read {base}: {exc}")) from None
    except KeyboardInterrupt:
        return


def register(app: typer.Typer) -> None:
    """Add ``sluice top``."""
    app.command("top")(top)
