"""Managed configuration where workflows run: a ``generate`` step renders a template version
the app's files no longer hold from the store, and the routing rules fail a step whose model
the tenant or the workflow may not use, naming the rule (on SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import orjson
import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import ConfigError
from sluice.governance.routing import ModelNotAllowedError, parse_rules
from sluice.governance.templates import ManagedTemplates
from sluice.models.base import ModelRequest, ModelResult
from sluice.store.base import EventState
from tests.conftest import MakeApp
from tests.store.conftest import (
    POSTGRES_URL,
    drop_test_schema,
    new_schema,
    postgres_schema_url,
)

TEMPLATE = """
model: llm
params: {temperature: 0, max_tokens: 40}
variables:
  ticket: {type: string}
system: You summarize tickets.
user: "Summarize: {{ ticket }}"
"""


class Label:
    """The simulator's classifier (generation requests never reach it)."""

    name = "fixed"
    version = "1"

    async def predict(self, request: ModelRequest) -> ModelResult:
        """One label."""
        return ModelResult(model=self.name, output={}, label="x", confidence=0.9)


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """The generative simulator on loopback."""
    settings = SimulatorSettings(mode="generate", seed=5)
    async with SimulatorServer(ModelSimulator(Label(), settings)) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runtime.db'}"
        return
    schema = new_schema()
    yield postgres_schema_url(schema)
    await drop_test_schema(schema)


async def _ledger_templates(store_url: str) -> list[str]:
    """The template column of every cost ledger row."""
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url[len("sqlite:///") :]) as db:
            return [row[0] for row in db.execute("SELECT template FROM costs")]
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        schema = store_url.rsplit("schema=", 1)[1]
        return [r[0] for r in await conn.fetch(f"SELECT template FROM {schema}.costs")]
    finally:
        await conn.close()


def _app(make_app: MakeApp, base_url: str, store_url: str, template: str) -> Path:
    config = f"""
        store: "{store_url}"
        pools:
          cpu: {{concurrency: 4}}
        models:
          llm: {{kind: openai, base_url: {base_url}}}
        prices:
          llm: {{input_per_1k: 0.001, output_per_1k: 0.002}}
        outbound: {{allow_private: ["127.0.0.1/32"]}}   # the simulator listens on loopback
    """
    workflow = f"""
        name: gen
        version: 1
        steps:
          - {{name: draft, pool: cpu, uses: generate, retries: 3,
             options: {{template: "{template}", inputs: {{ticket: text}}}}}}
    """
    app_dir = make_app(config, {"gen.yaml": workflow})
    (app_dir / "prompts").mkdir(exist_ok=True)
    (app_dir / "prompts" / "summary.yaml").write_text(textwrap.dedent(TEMPLATE))
    return app_dir


async def test_a_pinned_version_is_read_from_the_store(
    make_app: MakeApp, simulator: SimulatorServer, store_url: str
) -> None:
    """summary@OLD, pushed before the file changed: the step renders the stored version, and
    the ledger names it; an id neither the files nor the store hold fails the step, naming it."""
    app_dir = _app(make_app, simulator.base_url, store_url, "summary")
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        pushed = await ManagedTemplates(app.store).push(app_dir, "test")
    old = pushed[0].id
    (app_dir / "prompts" / "summary.yaml").write_text(
        textwrap.dedent(TEMPLATE).replace("Summarize:", "Sum up:")
    )
    workflow = (app_dir / "workflows" / "gen.yaml").read_text()
    (app_dir / "workflows" / "gen.yaml").write_text(workflow.replace('"summary"', f'"{old}"'))
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        assert app.services["prompts"]["summary"].id != old  # the files moved on
        event = await app.runtime.wait(
            await app.runtime.submit("gen", {"text": "my card is late"}), timeout=60
        )
        await app.telemetry.flush()
        assert event.state is EventState.DONE, event.error
        assert len(orjson.loads(event.result or b"{}")["draft"]["text"]) > 10
    assert await _ledger_templates(store_url) == [old]
    missing = old.split("@")[0] + "@000000000000"
    (app_dir / "workflows" / "gen.yaml").write_text(workflow.replace('"summary"', f'"{missing}"'))
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        event = await app.runtime.wait(await app.runtime.submit("gen", {"text": "x"}), timeout=60)
    assert event.state is EventState.DEAD
    assert missing in str(event.error)


async def test_routing_fails_the_step_naming_the_rule(
    make_app: MakeApp, simulator: SimulatorServer, store_url: str
) -> None:
    """A workflow limited to local models: its generate step is dead at once (not retried),
    the error names the rule; no model call is in the ledger; another tenant's rule does not
    apply to this one, and a tenant's own rule does."""
    app_dir = _app(make_app, simulator.base_url, store_url, "summary")
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        routing = app.services["routing"]
        await routing.set({"workflows": {"gen": {"providers": ["local"]}}}, "test")
        refused = await app.runtime.wait(await app.runtime.submit("gen", {"text": "a"}), 60)
        await routing.set({"tenants": {"acme": {"models": []}}}, "test")
        other = await app.runtime.wait(await app.runtime.submit("gen", {"text": "b"}), 60)
        mine = await app.runtime.wait(
            await app.runtime.submit("gen", {"text": "c"}, tenant="acme"), 60
        )
        await app.telemetry.flush()
        calls = await app.store.cost_totals("model", 0.0)
    assert refused.state is EventState.DEAD
    assert "routing v1: workflows.gen.providers does not allow provider '127.0.0.1'" in str(
        refused.error
    )
    assert "(not retryable)" in str(refused.error)  # the rule will not change by itself
    assert other.state is EventState.DONE, other.error
    assert mine.state is EventState.DEAD
    assert "routing v2: tenants.acme.models does not allow model 'llm' (allowed: none)" in str(
        mine.error
    )
    assert [(c.key, c.calls) for c in calls] == [("llm", 1)]


def test_rules_are_checked_in_order() -> None:
    """The tenant's rule, then the workflow's; "*" for those not named; keys apply to the
    gateway only; a bad document lists every problem with its path."""
    rules = parse_rules({"tenants": {"*": {"models": ["a", "b"]}, "t1": {"models": ["a"]}},
                         "workflows": {"w": {"models": ["b"]}}}, version=4)  # fmt: skip
    rules.check("a", tenant="t1", workflow="x")
    rules.check("b", tenant="t2", workflow="w")
    with pytest.raises(ModelNotAllowedError) as caught:
        rules.check("b", tenant="t1", workflow="w")
    assert caught.value.rule == "tenants.t1.models"
    with pytest.raises(ModelNotAllowedError) as caught:
        rules.check("a", tenant="t2", workflow="w")
    assert caught.value.rule == "workflows.w.models"
    assert not caught.value.retryable
    with pytest.raises(ConfigError) as bad:
        parse_rules({"tenants": {"t": {"models": "a"}}, "keys": {"k": {"providers": ["x"]}}})
    assert bad.value.problems == [
        "routing.tenants.t.models: must be a list of names",
        "routing.keys.k.providers: unknown key (known: models)",
    ]


@pytest.fixture
async def classifier() -> AsyncIterator[SimulatorServer]:
    """The simulator answering classification requests (label x, confidence 0.9)."""
    async with SimulatorServer(ModelSimulator(Label(), SimulatorSettings(seed=5))) as server:
        yield server


async def test_routing_refuses_a_cascade_tier(
    make_app: MakeApp, classifier: SimulatorServer, tmp_path: Path
) -> None:
    """A classify cascade whose second tier the tenant may not use: the escalation fails the
    step naming the rule; another tenant escalates as before."""
    config = f"""
        store: sqlite:///{tmp_path / "cascade.db"}
        pools:
          cpu: {{concurrency: 4}}
        models:
          small: {{kind: openai, base_url: {classifier.base_url}, labels: [x, y]}}
          large: {{kind: openai, base_url: {classifier.base_url}, labels: [x, y]}}
        outbound: {{allow_private: ["127.0.0.1/32"]}}
    """
    workflow = """
        name: triage
        version: 1
        steps:
          - {name: label, pool: cpu, uses: classify, retries: 2,
             options: {cascade: [{model: small, threshold: 0.95}, {model: large}]}}
    """
    app_dir = make_app(config, {"triage.yaml": workflow})
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        await app.services["routing"].set({"tenants": {"acme": {"models": ["small"]}}}, "t")
        refused = await app.runtime.wait(
            await app.runtime.submit("triage", {"text": "hi"}, tenant="acme"), 60
        )
        other = await app.runtime.wait(await app.runtime.submit("triage", {"text": "hi"}), 60)
    assert refused.state is EventState.DEAD
    assert "tenants.acme.models does not allow model 'large' (allowed: small)" in str(refused.error)
    assert other.state is EventState.DONE, other.error
    result = orjson.loads(other.result or b"{}")
    assert (result["escalated"], result["tiers"]) == (True, ["small", "large"])
