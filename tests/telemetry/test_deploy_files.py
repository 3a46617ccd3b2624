"""The Grafana dashboard and the Prometheus rules use only metrics and labels the app exports.

Every PromQL expression in ``deploy/`` is read, each ``sluice_*`` name in it is checked against
the families a served app's ``/metrics`` declares (with the suffixes their types allow), and
each label a selector matches on against the labels that family's series carry.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from sluice.testing import wait_until
from tests.telemetry.test_alerts import answerer
from tests.telemetry.test_top import Served, _breakers, _traffic, served, texts

__all__ = ["answerer", "served", "texts"]  # fixtures shared with the top and alert tests

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "sluice-dashboard.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
_NAME = re.compile(r"\bsluice_[a-z0-9_]+\b")
_SELECTOR = re.compile(r"\b(sluice_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _dashboard_exprs(node: Any) -> Iterator[str]:
    """Every query in the dashboard: panel targets and template variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_exprs(item)


def _rule_exprs() -> Iterator[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def test_the_files_are_well_formed() -> None:
    """Unique panel ids, a query in every panel, every rule named, annotated and timed."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] for p in panels if p["type"] != "row")
    rules = list(_rule_exprs())
    names = [name for name, _ in rules]
    assert len(names) == len(set(names))
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
            assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["rule_files"] == ["alerts.yml"]
    assert scrape["scrape_configs"][0]["metrics_path"] == "/metrics"
    assert (DEPLOY / "grafana" / "README.md").exists()


async def test_every_metric_and_label_used_is_exported(served: Served, texts: list[str]) -> None:
    """After some traffic, /metrics declares every name the dashboard and the rules use."""
    stop, sent = asyncio.Event(), [0]
    traffic = asyncio.create_task(_traffic(served, texts, stop, sent))
    # Events of both flags and an escalation: the labelled series of both tiers exist.
    await wait_until(
        lambda: sent[0] >= 10 and "model:large" in _breakers(served),
        "ten events and an escalation",
    )
    stop.set()
    assert await traffic > 0
    async with httpx.AsyncClient(base_url=served.url) as http:
        text = (await http.get("/metrics")).text
    exported: dict[str, str] = {}  # series name -> family name
    labels: dict[str, set[str]] = {}  # family name -> labels seen on its series
    for family in text_string_to_metric_families(text):
        for suffix in _SUFFIXES.get(family.type, ("",)):
            exported[family.name + suffix] = family.name
        seen = labels.setdefault(family.name, set())
        for sample in family.samples:
            seen.update(k for k in sample.labels if k != "le")
    declared = {  # the label names of the app's own counters and histograms
        metric._name: set(metric._labelnames)
        for metric in vars(served.app.metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    exprs = [("dashboard", e) for e in _dashboard_exprs(json.loads(DASHBOARD.read_text()))]
    exprs += list(_rule_exprs())
    used = {name for _, expr in exprs for name in _NAME.findall(expr)}
    assert len(used) >= 15  # the files really are read
    missing = sorted(used - set(exported))
    assert missing == [], f"used but not exported: {missing}"
    wrong_labels = []
    for where, expr in exprs:
        for name, matchers in _SELECTOR.findall(expr):
            fam = exported[name]
            # A family with no series yet (no spike fired) is checked against the label
            # names it declares.
            known = labels[fam] or declared.get(fam, set())
            assert known, f"{fam}: no series and no declared labels to check {where} against"
            for label in _MATCHER.findall(matchers):
                if label not in known:
                    wrong_labels.append(f"{where}: {name}{{{label}}}")
    assert wrong_labels == []


@pytest.mark.parametrize(
    "expr",
    ['rate(sluice_model_cost_total{flag="x"}[5m])', "sluice_cache_hits_total / on() up"],
)
def test_the_name_reader_finds_names_in_selectors_and_expressions(expr: str) -> None:
    """The regexes see names with and without selectors, and labels inside them."""
    names = _NAME.findall(expr)
    assert names
    assert all(n.startswith("sluice_") for n in names)
    for _, matchers in _SELECTOR.findall(expr):
        assert _MATCHER.findall(matchers) == ["flag"]
