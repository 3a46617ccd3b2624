"""The reliability machinery in the request path: SLO guards at admission and in the cascade,
spend budgets before each costly tier, states shared between processes through the KV."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.errors import AdmissionError, ConfigError, StepError
from sluice.kv.memory import MemoryKV
from sluice.models.base import ModelRequest
from sluice.models.cascade import Cascade, Tier
from sluice.reliability.config import SpendSettings, parse_reliability, parse_spend
from sluice.reliability.escalation import CostEstimates, EscalationGate, Hold
from sluice.reliability.slo_guard import GuardState
from sluice.reliability.slo_guards import SloGuards
from sluice.reliability.spend import MemoryLedger, SpendBudgets
from sluice.testing import ManualClock, ScriptedModel
from sluice.workflow.model import Step, Workflow
from tests.conftest import MakeApp
from tests.kv.conftest import new_prefix, patient_redis

REQUEST = ModelRequest(text="my card was charged twice")


def _spend(raw: dict[str, Any]) -> SpendSettings:
    """The ``spend:`` section parsed; every test here gives one."""
    settings = parse_spend(raw)
    assert settings is not None
    return settings


async def _noop(ctx: object, data: dict[str, object]) -> dict[str, object]:
    return data


def _workflow(name: str, slo: dict[str, object] | None) -> Workflow:
    extra = {} if slo is None else {"slo": slo}
    return Workflow(name, "1", (Step("s", "cpu", _noop),), extra=extra)


CLOSING = {"p95_ms": 100, "error_rate": 0.5, "window_s": 10, "policy": "fail_closed",
           "min_events": 5, "recover_s": 60}  # fmt: skip


class TestConfig:
    def test_every_problem_is_reported_with_its_path(self) -> None:
        with pytest.raises(ConfigError) as err:
            _spend({"limits": {"team:x": {"amount": 1}, "tenant:*": {"amount": -2},
                                    "workflow:w": {"amount": 1, "on_exhausted": "panic"}},
                         "reserve": {"large": "lots"}, "color": 1})  # fmt: skip
        text = "\n".join(err.value.problems)
        for fragment in ("spend.color", "spend.limits.team:x", "spend.limits.tenant:*.amount",
                         "spend.limits.workflow:w.on_exhausted", "spend.reserve"):  # fmt: skip
            assert fragment in text
        with pytest.raises(ConfigError) as err:
            parse_reliability({"guard_tiers": "yes", "breaker": {"open_s": 0, "colour": 1}})
        text = "\n".join(err.value.problems)
        assert "reliability.guard_tiers" in text
        assert "reliability.breaker.colour" in text
        assert "reliability.breaker: " in text

    def test_invalid_slo_of_a_workflow_is_refused(self) -> None:
        with pytest.raises(ConfigError) as err:
            SloGuards([_workflow("w", {"p95_ms": 100, "policy": "pray"})])
        assert any("slo.error_rate" in p for p in err.value.problems)
        assert any("slo.policy" in p for p in err.value.problems)


class TestSloGuards:
    def test_a_closed_guard_refuses_admission_with_retry_after(self) -> None:
        guards = SloGuards([_workflow("w", CLOSING), _workflow("free", None)])
        for _ in range(5):
            guards.record("w", 500.0, ok=True)
        with pytest.raises(AdmissionError) as err:
            guards.check("w")
        assert "p95" in str(err.value)
        assert err.value.retry_after >= 1
        guards.check("free")  # no SLO: never refused

    async def test_a_gateway_without_workers_acts_on_a_workers_guard(self) -> None:
        """The worker's guard closes; the gateway (no finished events) refuses after a sync.

        Each side has its own connection to Redis, the store a worker and a gateway process
        share: nothing passes between them but what Redis holds."""
        worker_kv = patient_redis(prefix := new_prefix())
        gateway_kv = patient_redis(prefix)
        await worker_kv.open()
        await gateway_kv.open()
        worker = SloGuards([_workflow("w", CLOSING)], worker_kv)
        gateway = SloGuards([_workflow("w", CLOSING)], gateway_kv)
        for _ in range(5):
            worker.record("w", 500.0, ok=True)
        gateway.check("w")  # nothing published yet
        await worker.sync()
        await gateway.sync()
        with pytest.raises(AdmissionError, match="refusing new work"):
            gateway.check("w")
        assert gateway.peer_refusals == 1
        assert gateway.peers()["w"].state is GuardState.CLOSED
        await worker_kv.delete_prefix()
        await worker_kv.aclose()
        await gateway_kv.aclose()

    async def test_a_gateway_lets_a_closed_peers_probes_through(self) -> None:
        """A worker's closed guard whose window drained publishes its probe interval; a
        gateway without workers admits one event per interval and refuses the rest."""
        kv = MemoryKV()
        await kv.open()
        clock = ManualClock()
        worker = SloGuards([_workflow("w", CLOSING)], kv, clock=clock)
        gateway = SloGuards([_workflow("w", CLOSING)], kv, clock=clock)
        for _ in range(5):
            worker.record("w", 500.0, ok=True)
        await worker.sync()
        await gateway.sync()
        assert gateway.peers()["w"].probe_s == 0.0  # the slip is in the window: no probes
        clock.advance(10.5)
        await worker.sync()
        await gateway.sync()
        assert gateway.peers()["w"].probe_s == 1.0  # window 10 s / (2 x 5 events)
        gateway.check("w")  # a probe
        with pytest.raises(AdmissionError, match="refusing new work"):
            gateway.check("w")
        clock.advance(1.0)
        gateway.check("w")

    async def test_a_degrading_peer_makes_steps_skip_escalation(self) -> None:
        kv = MemoryKV()
        await kv.open()
        slo = {**CLOSING, "policy": "degrade"}
        worker, other = SloGuards([_workflow("w", slo)], kv), SloGuards([_workflow("w", slo)], kv)
        for _ in range(5):
            worker.record("w", 500.0, ok=True)
        assert worker.degraded("w")
        assert not other.degraded("w")
        await worker.sync()
        await other.sync()
        assert other.degraded("w")
        other.check("w")  # degrade admits everything


class TestCascadeEscalation:
    async def test_a_refused_escalation_keeps_the_cheap_answer(self) -> None:
        small, large = ScriptedModel("small", ["card_arrival"]), ScriptedModel("large", ["x"])
        cascade = Cascade([Tier(small, 1.0), Tier(large)])

        async def refuse(model: str) -> str:
            return "slo"

        outcome = await cascade.run(REQUEST, refuse)
        assert outcome.skipped == "slo"
        assert outcome.tiers_run == ("small",)
        assert large.calls == 0

    async def test_a_failed_call_releases_its_reservation(self) -> None:
        budgets = SpendBudgets(_spend({"limits": {"workflow:w": {"amount": 1.0}}}).limits,
                               MemoryLedger())  # fmt: skip
        small = ScriptedModel("small", ["card_arrival"])
        large = ScriptedModel("large", [StepError("boom", retryable=True)])
        gate = EscalationGate(None, budgets, CostEstimates(_spend({"reserve": {"large": 0.4}})))
        cascade = Cascade([Tier(small, 1.0), Tier(large)])
        with pytest.raises(StepError):
            await cascade.run(REQUEST, lambda m: gate.allow("w", "t", m))
        status = await budgets.status("workflow:w")
        assert status is not None
        assert status.spent == 0.0


class TestSpendAtEscalation:
    async def test_no_overshoot_under_100_concurrent_escalations(self) -> None:
        """0.37 held per call against 10.00: exactly 27 calls run, the rest degrade."""
        spend = _spend({"limits": {"tenant:*": {"amount": 10.0, "on_exhausted": "degrade"}},
                             "reserve": {"large": 0.37}})  # fmt: skip
        budgets = SpendBudgets(spend.limits, MemoryLedger())
        gate = EscalationGate(None, budgets, CostEstimates(spend))

        async def one() -> Hold | str:
            granted = await gate.allow("w", "acme", "large")
            await asyncio.sleep(0.001)  # the costly call, concurrently with the others
            if isinstance(granted, Hold):
                await granted.commit(0.37)
            return granted

        results = await asyncio.gather(*(one() for _ in range(100)))
        assert sum(isinstance(r, Hold) for r in results) == 27
        assert results.count("spend") == 73
        status = await budgets.status("tenant:acme")
        assert status is not None
        assert status.spent == pytest.approx(9.99)
        assert status.spent <= 10.0

    async def test_refuse_fails_the_step_then_admission_refuses(self) -> None:
        spend = _spend({"limits": {"workflow:w": {"amount": 0.5}}, "reserve": {"large": 0.3}})
        gate = EscalationGate(
            None, SpendBudgets(spend.limits, MemoryLedger()), CostEstimates(spend)
        )
        assert isinstance(await gate.allow("w", "t", "large"), Hold)
        with pytest.raises(StepError, match="spend budget for 'workflow:w' is exhausted") as err:
            await gate.allow("w", "t", "large")
        assert err.value.retryable is False
        with pytest.raises(AdmissionError, match="exhausted"):
            gate.check("w", "another-tenant")
        gate.check("other-workflow", "t")

    def test_reserve_learns_the_costliest_call(self) -> None:
        costs = CostEstimates(_spend({"default_reserve": 0.05}))
        assert costs.of("llm") == 0.05
        costs.observe("llm", 0.002)
        costs.observe("llm", 0.001)
        assert costs.of("llm") == 0.002


SLOW_STEPS = """
import asyncio

async def slow(ctx, data):
    await asyncio.sleep(0.15)
    return data
"""


async def test_app_admission_closes_when_the_slo_slips(make_app: MakeApp, tmp_path: Path) -> None:
    """A real app: slow events finish past the SLO, the guard closes, new events are refused
    at admission (the 503 over HTTP: tests/ingress/test_refusals.py)."""
    app_dir = make_app(
        "store: sqlite:///.sluice/slo.db\npools:\n  cpu: {concurrency: 8}\n",
        {
            "slow.yaml": """
            name: slow
            version: 1
            slo: {p95_ms: 100, error_rate: 0.5, window_s: 10, policy: fail_closed,
                  min_events: 5, recover_s: 60}
            steps:
              - {name: wait, pool: cpu, uses: "slow_steps:slow"}
        """
        },
        {"slow_steps.py": SLOW_STEPS},
    )
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        ids = [await app.runtime.submit("slow", {"n": i}) for i in range(6)]
        deadline = time.monotonic() + 60  # generous: a loaded machine only slows them more
        for event_id in ids:
            await app.runtime.wait(event_id, timeout=max(0.1, deadline - time.monotonic()))
        guards = app.services["slo_guards"]
        while guards.snapshot()[0].state is not GuardState.CLOSED:  # recorded after the commit
            assert time.monotonic() < deadline, guards.snapshot()[0]
            await asyncio.sleep(0.01)
        with pytest.raises(AdmissionError, match="SLO slipped"):
            await app.runtime.submit("slow", {"n": 99})
        snapshot = app.services["slo_guards"].snapshot()[0]
        assert snapshot.state is GuardState.CLOSED
        assert snapshot.counts["refused"] == 1
