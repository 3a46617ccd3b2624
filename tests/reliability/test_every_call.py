"""Every model call is held against the spend budgets: a one-tier cascade and a custom step.

A real app (SQLite store, the spend ledger on Redis) calls an OpenAI-kind model served by the
model simulator on loopback. 100 events run concurrently against a small ``refuse`` or
``degrade`` budget; what was spent is read back from the cost ledger in the store, apart from
the budget's own counters, and must never exceed the budget.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_answerer import TfidfAnswerer
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import AdmissionError, ConfigError
from sluice.kv.redis import RedisKV
from sluice.models.base import ModelRequest
from sluice.models.estimate import cost_bound
from sluice.store.base import EventState
from tests.conftest import MakeApp

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS", "redis://127.0.0.1:6379/0")
DATA = Path(__file__).resolve().parents[2] / "examples/triage/data/banking77/train.csv"
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed"]
EVENTS = 100
# Every ticket the same length, so every call asks about as many tokens; distinct, so the
# response cache answers none of them.
TICKETS = [f"my card number {i:03d} has still not arrived, where is it?" for i in range(EVENTS)]
LIMIT = 0.003

CUSTOM_STEP = """
from sluice.models.base import ModelRequest


async def label(ctx, data):
    result = await ctx.service("models")["llm"].predict(ModelRequest(text=data["text"]))
    return {**data, "intent": result.label, "model": result.model,
            **({"degraded": result.fallback} if result.fallback else {})}
"""


@pytest.fixture(scope="module")
def answerer() -> TfidfAnswerer:
    """A real TF-IDF + LR model on a few hundred BANKING77 rows answers for the simulator."""
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    return TfidfAnswerer.from_csv(DATA, limit=400)


@pytest.fixture
async def simulator(answerer: TfidfAnswerer) -> AsyncIterator[SimulatorServer]:
    """The simulator on loopback, a little slow so that the 100 calls overlap."""
    settings = SimulatorSettings(seed=7, p50_ms=20, p95_ms=50)
    async with SimulatorServer(ModelSimulator(answerer, settings)) as server:
        yield server


def _config(base_url: str, policy: str, *, amount: float = LIMIT) -> str:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    return f"""
        store: sqlite:///.sluice/budget.db
        outbound: {{allow_private: ["127.0.0.1/32"]}}  # the simulator: allowed explicitly
        kv: {REDIS_URL}?prefix={prefix}&fallback=0&connect_timeout_ms=10000&timeout_ms=10000
        pools:
          inference: {{concurrency: 50}}
        telemetry: {{flush_ms: 50}}
        models:
          llm:
            kind: openai
            base_url: {base_url}
            labels: {LABELS}
            params: {{temperature: 0, max_tokens: 24}}
          mini:
            kind: openai
            base_url: {base_url}
            labels: {LABELS}
        prices:
          llm: {{input_per_1k: 0.001, output_per_1k: 0.002}}
          mini: {{per_call: 0}}
        spend:
          limits:
            "workflow:orders": {{amount: {amount}, on_exhausted: {policy}}}
    """


def _workflow(kind: str, policy: str) -> str:
    degrade = "\n        degrade_to: mini" if policy == "degrade" else ""
    if kind == "classify":
        step = f"""
    - name: label
      pool: inference
      uses: classify
      retries: 0
      options:
        field: text
        cascade: [{{model: llm}}]{degrade}"""
    else:
        step = f"""
    - name: label
      pool: inference
      uses: "custom_steps:label"
      retries: 0
      options:{degrade or " {}"}"""
    return f"""
name: orders
version: 1
steps:{step}
"""


async def _run(app: SluiceApp, tickets: list[str]) -> list[Any]:
    """Submit every ticket at once and wait for each event to finish."""
    ids = await asyncio.gather(*(app.runtime.submit("orders", {"text": t}) for t in tickets))
    deadline = time.monotonic() + 120  # generous: the machine is shared
    return [await app.runtime.wait(i, timeout=max(0.1, deadline - time.monotonic())) for i in ids]


async def _forget(app: SluiceApp) -> None:
    """Drop this test's budget windows from Redis."""
    assert isinstance(app.kv, RedisKV)  # fallback=0: the ledger is Redis, nothing else
    await app.kv.delete_prefix()


async def _ledger(app: SluiceApp) -> dict[str, tuple[int, float]]:
    """Calls and cost per model, from the cost ledger the store holds."""
    await app.telemetry.flush()
    totals = await app.store.cost_totals("model", 0.0)
    return {t.key: (t.calls, t.cost) for t in totals}


def _least(app: SluiceApp) -> int:
    """How many llm calls the budget holds whatever the timing: the budget over the amount
    held per call (the estimate, at least the real cost). More fit as calls settle at their
    real cost while others wait; the ledger's total bounds those."""
    llm = app.services["models"]["llm"]
    held = max(cost_bound(llm, ModelRequest(text=t)) or 0.0 for t in TICKETS)
    assert held > 0
    return math.floor(LIMIT / held)


@pytest.mark.parametrize("kind", ["classify", "custom"])
async def test_refuse_budget_holds_every_call(
    kind: str, make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """100 concurrent events against a refuse budget: what fits runs, the rest die with the
    budget's error, the ledger shows no overshoot, and admission refuses the budget after."""
    app_dir = make_app(
        _config(simulator.base_url, "refuse"),
        {"orders.yaml": _workflow(kind, "refuse")},
        {"custom_steps.py": CUSTOM_STEP},
    )
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        try:
            events = await _run(app, TICKETS)
            ledger = await _ledger(app)
            least = _least(app)
            with pytest.raises(AdmissionError, match="workflow:orders"):
                await app.runtime.submit("orders", {"text": TICKETS[0]})
        finally:
            await _forget(app)
    done = [e for e in events if e.state is EventState.DONE]
    dead = [e for e in events if e.state is EventState.DEAD]
    calls, spent = ledger["llm"]
    assert spent <= LIMIT  # 0 overshoot, from the ledger, not from the budget's counters
    assert calls == len(done)
    assert least <= len(done) < EVENTS
    assert len(done) + len(dead) == EVENTS
    assert all("spend budget for 'workflow:orders' is exhausted" in (e.error or "") for e in dead)


@pytest.mark.parametrize("kind", ["classify", "custom"])
async def test_degrade_budget_falls_back_to_degrade_to(
    kind: str, make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """100 concurrent events against a degrade budget: what fits is answered by the priced
    model, every other event by the declared degrade_to model, and none is lost."""
    app_dir = make_app(
        _config(simulator.base_url, "degrade"),
        {"orders.yaml": _workflow(kind, "degrade")},
        {"custom_steps.py": CUSTOM_STEP},
    )
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        try:
            events = await _run(app, TICKETS)
            ledger = await _ledger(app)
            least = _least(app)
            await app.runtime.submit("orders", {"text": TICKETS[0]})  # degrade admits
        finally:
            await _forget(app)
    assert all(e.state is EventState.DONE for e in events), [e.error for e in events]
    results = [e.result for e in events]
    degraded = [r for r in results if r is not None and b'"degraded":"spend"' in r]
    calls, spent = ledger["llm"]
    assert spent <= LIMIT
    assert calls + len(degraded) == EVENTS
    assert least <= calls < EVENTS
    assert all(b'"model":"mini"' in r for r in degraded)
    assert ledger["mini"] == (len(degraded), 0.0)


async def test_reported_one_tier_workflow_budget_is_applied(
    make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """The report: ``"workflow:orders": {amount: 0.0003, on_exhausted: refuse}`` on a one-tier
    cascade let five calls through for more than the budget. Now the calls past it are refused."""
    app_dir = make_app(
        _config(simulator.base_url, "refuse", amount=0.0003),
        {"orders.yaml": _workflow("classify", "refuse")},
    )
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        try:
            events = await _run(app, TICKETS[:5])
            ledger = await _ledger(app)
        finally:
            await _forget(app)
    calls, spent = ledger.get("llm", (0, 0.0))
    assert spent <= 0.0003
    assert sum(e.state is EventState.DONE for e in events) == calls < 5


def test_a_one_tier_cascade_under_a_degrade_budget_needs_degrade_to(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """Degrade with nothing to fall back to is refused when the app loads, with its path;
    so is a degrade_to that names no model."""
    config = _config("http://127.0.0.1:9/v1", "degrade")
    app_dir = make_app(config, {"orders.yaml": _workflow("classify", "refuse")})
    with pytest.raises(ConfigError) as err:
        SluiceApp.from_settings(load_settings(app_dir))
    assert any(
        p.startswith("workflows.orders.steps.label.options.degrade_to: required")
        for p in err.value.problems
    ), err.value.problems
    wrong = _workflow("classify", "degrade").replace("degrade_to: mini", "degrade_to: nano")
    app_dir = make_app(config, {"orders.yaml": wrong})
    with pytest.raises(ConfigError) as err:
        SluiceApp.from_settings(load_settings(app_dir))
    assert "'nano' is not a model" in "\n".join(err.value.problems)
