"""Prometheus metrics: exported at /metrics, updated along an event's walk, bounded labels."""

from __future__ import annotations

import re

import orjson
import pytest

from sluice.errors import ConfigError
from sluice.telemetry.metrics import NO_FLAG, OTHER, Metrics, route_label
from tests.ingress.conftest import Ingress


def _value(text: str, metric: str, **labels: str) -> float:
    """The sample of ``metric`` whose labels include ``labels`` (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_an_event_shows_up_in_every_metric(ingress: Ingress) -> None:
    """Accepted, quarantined, finished, step timing, HTTP counts and pool gauges are exported."""
    runs = "/v1/workflows/tickets/runs"
    ok = await ingress.http.post(runs, json={"text": "hello"}, headers=ingress.auth())
    await ingress.app.runtime.wait(ok.json()["event_id"], 5)
    await ingress.http.post(runs, json={"text": ""}, headers=ingress.auth())  # 422, quarantined
    await ingress.http.post(runs, json={"text": "x"})  # 401
    resp = await ingress.http.get("/metrics")
    assert resp.status_code == 200
    text = resp.text
    base = {"tenant": "acme", "workflow": "tickets"}
    assert _value(text, "sluice_events_accepted_total", **base, source="api") == 1
    assert _value(text, "sluice_events_quarantined_total", **base, source="api") == 1
    assert _value(text, "sluice_events_finished_total", **base, outcome="done") == 1
    assert _value(text, "sluice_step_duration_seconds_count", step="keep", outcome="ok") == 1
    assert _value(text, "sluice_http_requests_total", route="runs:start", status="202") == 1
    assert _value(text, "sluice_http_requests_total", route="runs:start", status="401") == 1
    assert _value(text, "sluice_http_requests_total", route="runs:start", status="422") == 1
    assert 'sluice_queue_depth{pool="cpu"}' in text
    assert _value(text, "sluice_pool_concurrency", pool="cpu") == 4


def test_tenant_labels_are_bounded() -> None:
    """Past the limit, new tenants fold into ``other``; known ones keep their names."""
    metrics = Metrics(max_tenants=2)
    assert [metrics.tenant(t) for t in ("a", "b", "c", "a", "d")] == ["a", "b", OTHER, "a", OTHER]


def test_routes_are_templates() -> None:
    """Raw paths never become labels."""
    assert route_label("/v1/runs/0123abc") == "runs:get"
    assert route_label("/v1/hooks/helpdesk") == "hooks"
    assert route_label("/wp-admin/login.php") == OTHER


async def test_feature_flags_are_declared_carried_and_bounded(ingress: Ingress) -> None:
    """A declared X-Sluice-Flag keeps its name, travels with the event as metadata (not in
    its data) and labels the accepted and finished counts and the latency; an undeclared one
    folds into ``other``; no header is ``none``."""
    ingress.app.metrics.configure({"flags": ["beta"]})
    runs = "/v1/workflows/tickets/runs"
    records = {}
    for flag in ("beta", "made-up", None):
        headers = {**ingress.auth(), **({"x-sluice-flag": flag} if flag else {})}
        resp = await ingress.http.post(runs, json={"text": "hi"}, headers=headers)
        records[flag] = await ingress.app.runtime.wait(resp.json()["event_id"], 5)
    assert [records[f].flag for f in ("beta", "made-up", None)] == ["beta", OTHER, None]
    for record in records.values():
        assert orjson.loads(record.result or b"{}") == {"text": "hi"}
    text = (await ingress.http.get("/metrics")).text
    for label in ("beta", OTHER, NO_FLAG):
        assert _value(text, "sluice_events_accepted_total", workflow="tickets", flag=label) == 1
        assert _value(text, "sluice_events_finished_total", outcome="done", flag=label) == 1
        assert _value(text, "sluice_event_duration_seconds_count", flag=label) == 1


async def test_a_flag_in_the_body_is_only_data(ingress: Ingress) -> None:
    """Issue 20 #10: a ``_flag`` body field without the header labels nothing: accepted,
    finished and latency all count ``none`` (finished and latency used to count ``beta``),
    and the field stays the client's data."""
    ingress.app.metrics.configure({"flags": ["beta"]})
    body = {"text": "hi", "_flag": "beta"}
    resp = await ingress.http.post("/v1/workflows/tickets/runs", json=body, headers=ingress.auth())
    record = await ingress.app.runtime.wait(resp.json()["event_id"], 5)
    text = (await ingress.http.get("/metrics")).text
    for metric in ("sluice_events_accepted_total", "sluice_events_finished_total",
                   "sluice_event_duration_seconds_count"):  # fmt: skip
        assert _value(text, metric, flag="beta") == 0, metric
        assert _value(text, metric, flag=NO_FLAG) == 1, metric
    assert orjson.loads(record.result or b"{}") == body
    assert record.flag is None


def test_the_metrics_section_is_validated() -> None:
    metrics = Metrics()
    with pytest.raises(ConfigError) as err:
        metrics.configure({"flags": ["ok", "bad flag!"], "max_tenants": 0, "colour": 1})
    text = "\n".join(err.value.problems)
    for fragment in ("metrics.flags", "metrics.max_tenants", "metrics.colour"):
        assert fragment in text
    with pytest.raises(ConfigError, match="at most 20"):
        metrics.configure({"flags": [f"f{i}" for i in range(21)]})
    metrics.configure({"flags": ["a"], "max_tenants": 1})
    assert (metrics.flag("a"), metrics.flag("b"), metrics.flag(None)) == ("a", OTHER, NO_FLAG)
    assert [metrics.tenant(t) for t in ("x", "y")] == ["x", OTHER]
