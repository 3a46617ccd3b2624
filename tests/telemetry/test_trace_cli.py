"""``sluice trace`` and ``sluice costs`` on a real app's store, after real events ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.models.base import ModelResult, Usage
from sluice.store.base import EventState
from tests.cli.test_cli_runtime import sluice
from tests.conftest import MakeApp

CONFIG = """
store: sqlite:///.sluice/trace.db
pools: {work: {concurrency: 2}}
telemetry: {flush_ms: 20}
"""
WORKFLOW = """
name: pair
input_schema: {type: object}
steps:
  - {name: first, pool: work, uses: noop}
  - {name: second, pool: work, uses: sleep, options: {ms: 5}}
"""


async def _run_one(app_dir: Path) -> str:
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        with app.telemetry.span("accept pair") as root:
            assert root is not None
            event_id = await app.runtime.submit("pair", {"n": 1}, tenant="acme")
        record = await app.runtime.wait(event_id, 10)
        assert record.state is EventState.DONE
        calls = [
            ModelResult("small", {}, "a", 0.9, Usage(12, 0), cost=0.002),
            ModelResult("large", {}, "a", 0.9, Usage(30, 4), cost=0.05),
            ModelResult("small", {}, "a", 0.9, cached=True),
        ]
        app.telemetry.record_costs(event_id, "acme", "pair", "classify", calls)
    return event_id


async def test_trace_prints_the_waterfall_and_costs_the_totals(make_app: MakeApp) -> None:
    """The waterfall nests steps under the accept span; costs group and total the ledger."""
    app_dir = make_app(CONFIG, {"pair.yaml": WORKFLOW})
    event_id = await _run_one(app_dir)

    shown = sluice("trace", event_id, "--app", str(app_dir))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("trace ")
    assert "3 spans" in lines[0]
    assert "| accept pair" in lines[1]
    assert "|   step first  pool=work attempt=1 outcome=ok" in lines[2]
    assert "|   step second" in lines[3]
    as_json = json.loads(sluice("trace", event_id, "--app", str(app_dir), "--json").stdout)
    assert [(s["depth"], s["name"]) for s in as_json["spans"]] == [
        (0, "accept pair"), (1, "step first"), (1, "step second")
    ]  # fmt: skip
    by_trace = sluice("trace", as_json["trace_id"], "--app", str(app_dir))
    assert by_trace.stdout == shown.stdout

    out = sluice("costs", "--app", str(app_dir), "--by", "model", "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert [(g["key"], g["calls"], g["cached"]) for g in figures["groups"]] == [
        ("large", 1, 0), ("small", 2, 1)
    ]  # fmt: skip
    assert figures["total"]["cost"] == pytest.approx(0.052)
    assert figures["groups"][1]["cost_per_call"] == pytest.approx(0.001)
    table = sluice("costs", "--app", str(app_dir), "--by", "tenant", "--since", "1h").stdout
    assert table.splitlines()[2].split()[:3] == ["acme", "3", "1"]
    later = sluice("costs", "--app", str(app_dir), "--since", "2999-01-01T00:00:00", "--json")
    assert json.loads(later.stdout)["groups"] == []


def test_bad_arguments_are_clear_errors(make_app: MakeApp) -> None:
    """Unknown events, groupings and times exit 2 with a message saying what is accepted."""
    app_dir = make_app(CONFIG, {"pair.yaml": WORKFLOW})
    missing = sluice("trace", "nope", "--app", str(app_dir))
    assert missing.returncode == 2
    assert "no trace for 'nope'" in missing.stderr
    by = sluice("costs", "--app", str(app_dir), "--by", "colour")
    assert by.returncode == 2
    assert "tenant, workflow, model, step" in by.stderr
    since = sluice("costs", "--app", str(app_dir), "--since", "yesterday")
    assert since.returncode == 2
    assert "30m, 24h, 7d" in since.stderr


async def _submit_unsampled(app_dir: Path) -> str:
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        with app.telemetry.span("accept pair"):
            event_id = await app.runtime.submit("pair", {"n": 1}, tenant="acme")
        assert (await app.runtime.wait(event_id, 10)).state is EventState.DONE
    return event_id


async def test_an_unsampled_trace_names_the_setting_to_change(make_app: MakeApp) -> None:
    """A trace that sampling left out says so, with the setting and its PostgreSQL default."""
    config = CONFIG.replace(
        "telemetry: {flush_ms: 20}", "telemetry: {flush_ms: 20, sample_ratio: 0}"
    )
    app_dir = make_app(config, {"pair.yaml": WORKFLOW})
    event_id = await _submit_unsampled(app_dir)
    shown = sluice("trace", event_id, "--app", str(app_dir))
    assert shown.returncode == 2
    assert "telemetry.sample_ratio is 0" in shown.stderr, shown.stderr
    assert "set it to 1.0" in shown.stderr
