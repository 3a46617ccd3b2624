"""Spend budgets hold every generation: a one-tier ``generate`` workflow and a custom step that
generates through ``ctx.service("generate")``, 100 concurrent events against a small
``refuse`` or ``degrade`` budget, the generative simulator on loopback, the spend ledger on
Redis. What was spent is read back from the cost ledger in the store and never exceeds the
budget."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import AdmissionError
from sluice.kv.redis import RedisKV
from sluice.models.base import ModelRequest, ModelResult
from sluice.store.base import EventState
from tests.conftest import MakeApp

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS", "redis://127.0.0.1:6379/0")
EVENTS = 100
# Distinct tickets of one length: every call asks about as many tokens, none is a cache hit.
TICKETS = [f"my card number {i:03d} has still not arrived, where is it?" for i in range(EVENTS)]
LIMIT = 0.003
TEMPLATE = """
model: llm
params: {temperature: 0, max_tokens: 40}
variables:
  ticket: {type: string}
system: You draft short replies for a bank.
user: "Reply to: {{ ticket }}"
"""
CUSTOM = """
async def draft(ctx, data):
    outcome = await ctx.service("generate")("reply", {"ticket": data["text"]})
    if outcome.degraded:
        return {**data, "draft": None, "degraded": outcome.degraded}
    return {**data, "draft": outcome.value}
"""


class FixedLabel:
    """The simulator's classifier (generation requests never reach it)."""

    name = "fixed"
    version = "1"

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Always ``card_arrival``."""
        return ModelResult(model=self.name, output={}, label="card_arrival", confidence=0.9)


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """The generative simulator, a little slow so that the 100 calls overlap."""
    settings = SimulatorSettings(mode="generate", seed=7, p50_ms=20, p95_ms=50)
    async with SimulatorServer(ModelSimulator(FixedLabel(), settings)) as server:
        yield server


def _app(make_app: MakeApp, base_url: str, kind: str, policy: str) -> Path:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    config = f"""
        store: sqlite:///.sluice/budget.db
        outbound: {{allow_private: ["127.0.0.1/32"]}}  # local servers: allowed explicitly
        kv: {REDIS_URL}?prefix={prefix}&fallback=0&connect_timeout_ms=10000&timeout_ms=10000
        pools:
          inference: {{concurrency: 50}}
        telemetry: {{flush_ms: 50}}
        models:
          llm: {{kind: openai, base_url: {base_url}}}
        prices:
          llm: {{input_per_1k: 0.001, output_per_1k: 0.002}}
        spend:
          limits:
            "workflow:orders": {{amount: {LIMIT}, on_exhausted: {policy}}}
    """
    module = f"budget_gen_{uuid.uuid4().hex[:8]}"  # a fresh module: step modules are cached
    uses = "generate" if kind == "generate" else f'"{module}:draft"'
    workflow = f"""
name: orders
version: 1
steps:
  - name: draft
    pool: inference
    uses: {uses}
    retries: 0
    options: {{template: reply, inputs: {{ticket: text}}}}
"""
    if kind != "generate":
        workflow = workflow.replace("options: {template: reply, inputs: {ticket: text}}",
                                    "options: {}")  # fmt: skip
    app_dir = make_app(config, {"orders.yaml": workflow}, {f"{module}.py": CUSTOM})
    (app_dir / "prompts").mkdir(exist_ok=True)
    (app_dir / "prompts" / "reply.yaml").write_text(textwrap.dedent(TEMPLATE))
    return app_dir


async def _run(app: SluiceApp) -> list[Any]:
    ids = await asyncio.gather(*(app.runtime.submit("orders", {"text": t}) for t in TICKETS))
    deadline = time.monotonic() + 120  # generous: the machine is shared
    return [await app.runtime.wait(i, timeout=max(0.1, deadline - time.monotonic())) for i in ids]


async def _ledger(app: SluiceApp) -> tuple[int, float]:
    await app.telemetry.flush()
    totals = {t.key: t for t in await app.store.cost_totals("model", 0.0)}
    llm = totals.get("llm")
    return (0, 0.0) if llm is None else (llm.calls, llm.cost)


async def _forget(app: SluiceApp) -> None:
    assert isinstance(app.kv, RedisKV)  # fallback=0: the ledger is Redis, nothing else
    await app.kv.delete_prefix()


@pytest.mark.parametrize("kind", ["generate", "custom"])
async def test_refuse_budget_holds_every_generation(
    kind: str, make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """What fits runs; the rest die with the budget's error; zero overshoot in the ledger;
    admission refuses the budget afterwards."""
    app_dir = _app(make_app, simulator.base_url, kind, "refuse")
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        try:
            events = await _run(app)
            calls, spent = await _ledger(app)
            with pytest.raises(AdmissionError, match="workflow:orders"):
                await app.runtime.submit("orders", {"text": TICKETS[0]})
        finally:
            await _forget(app)
    done = [e for e in events if e.state is EventState.DONE]
    dead = [e for e in events if e.state is EventState.DEAD]
    assert spent <= LIMIT  # 0 overshoot
    assert calls == len(done)
    assert 0 < len(done) < EVENTS
    assert len(done) + len(dead) == EVENTS
    assert all("spend budget for 'workflow:orders' is exhausted" in (e.error or "") for e in dead)


@pytest.mark.parametrize("kind", ["generate", "custom"])
async def test_degrade_budget_marks_the_events_it_does_not_hold(
    kind: str, make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """What fits is generated; every other event completes with ``degraded: spend`` and no
    draft (the declared cheaper path of a later step), none is lost, zero overshoot."""
    app_dir = _app(make_app, simulator.base_url, kind, "degrade")
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        try:
            events = await _run(app)
            calls, spent = await _ledger(app)
        finally:
            await _forget(app)
    assert all(e.state is EventState.DONE for e in events), [e.error for e in events]
    results = [orjson.loads(e.result) for e in events]
    degraded = [r for r in results if r.get("degraded") == "spend"]
    drafted = [r for r in results if r.get("draft")]
    assert spent <= LIMIT
    assert calls == len(drafted)
    assert 0 < calls < EVENTS
    assert len(drafted) + len(degraded) == EVENTS
    assert all(r["draft"] is None for r in degraded)
