"""The classify step's labels: a breaker-forced fallback (one call, marked, counted by
reason) and the feature flag (from the event's metadata, never from its data)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.ingress.test_http_metrics import _value
from tests.reliability.test_guarded import REQUEST, busy

from sluice.cache.backend import MemoryBackend
from sluice.cache.response import ResponseCache
from sluice.models.cascade import Cascade, Tier
from sluice.models.guarded import GuardedModel
from sluice.reliability.breaker import BreakerSettings, BreakerState, CircuitBreaker
from sluice.reliability.retry_budget import RetryBudget, RetryBudgetSettings
from sluice.steps.classify import classify
from sluice.store.sqlite import SqliteStore
from sluice.telemetry.metrics import Metrics
from sluice.telemetry.settings import TelemetrySettings
from sluice.telemetry.tracing import Telemetry
from sluice.testing import ManualClock, ScriptedModel, step_context

TIERS = [{"model": "small", "threshold": 0.95}, {"model": "large"}]


class _Cascades:
    """The ``cascades`` service for one cascade."""

    def __init__(self, cascade: Cascade) -> None:
        self.cascade = cascade

    def get(self, tiers: object) -> Cascade:
        return self.cascade


async def test_an_open_breaker_keeps_the_cheap_answer_once(tmp_path: Path) -> None:
    """Issue 20 #13: with the large model's breaker open, each event's result says
    ``tiers: ["small"]`` and ``degraded: "breaker"``, the ledger has one row per event (it
    had a second, cached one for the fallback: ``["small", "small"]``), and
    ``sluice_model_fallbacks`` counts the fallbacks by reason."""
    clock = ManualClock()
    small = ScriptedModel("small", ["card_arrival"])  # confidence 0.9: below 0.95, escalate
    large = ScriptedModel("large", [busy()])
    cached_small = ResponseCache(MemoryBackend(max_entries=10)).wrap(small)
    breaker = CircuitBreaker("model:large", BreakerSettings(open_s=60.0), clock=clock)
    for _ in range(5):
        breaker.record(success=False)
    assert breaker.state is BreakerState.OPEN
    guarded = GuardedModel(
        large, breaker, RetryBudget(RetryBudgetSettings(), clock=clock), cached_small, attempts=1
    )
    store = SqliteStore(tmp_path / "ledger.db")
    await store.open()
    telemetry = Telemetry(TelemetrySettings(), store)
    metrics = Metrics()
    services = {
        "cascades": _Cascades(Cascade([Tier(cached_small, 0.95), Tier(guarded)])),
        "telemetry": telemetry,
        "metrics": metrics,
    }
    try:
        results = []
        for i in range(3):
            ctx = step_context(
                event_id=f"e{i}", workflow="triage", tenant="acme", step="classify",
                options={"cascade": TIERS}, services=services,
            )  # fmt: skip
            results.append(await classify(ctx, {"text": "where is my card"}))
        await telemetry.flush()
        (total,) = await store.cost_totals("model", 0.0)
    finally:
        await store.aclose()
    for result in results:
        assert result["tiers"] == ["small"]
        assert result["degraded"] == "breaker"
        assert (result["model"], result["intent"], result["escalated"]) == (
            "small", "card_arrival", False)  # fmt: skip
    assert (total.key, total.calls, total.cached) == ("small", 3, 2)  # one row an event
    assert (large.calls, small.calls, guarded.fallbacks["breaker"]) == (0, 1, 3)
    text = metrics.render().decode()
    assert _value(text, "sluice_model_fallbacks_total", model="large", reason="breaker") == 3
    assert _value(text, "sluice_model_calls_total", model="small") == 3


@pytest.mark.parametrize("so_far", ["small", "other"])
async def test_a_guarded_tier_reuses_the_answer_so_far(so_far: str) -> None:
    """Given the fallback's own answer, the guarded model returns it marked; given another
    model's, it asks its fallback."""
    clock = ManualClock()
    small = ScriptedModel("small", ["lost_card"])
    breaker = CircuitBreaker("model:large", BreakerSettings(), clock=clock)
    for _ in range(5):
        breaker.record(success=False)
    guarded = GuardedModel(
        ScriptedModel("large", ["x"]), breaker, RetryBudget(RetryBudgetSettings()), small
    )
    answer = await ScriptedModel(so_far, ["card_arrival"]).predict(REQUEST)
    result = await guarded.predict(REQUEST, answered=answer)
    assert result.fallback == "breaker"
    assert small.calls == (0 if so_far == "small" else 1)
    assert result.label == ("card_arrival" if so_far == "small" else "lost_card")


async def test_model_calls_take_the_flag_from_the_event_not_the_data() -> None:
    """Issue 20 #10: a ``_flag`` field in the data labels no model call; the event's flag
    (set at ingress from the header) does."""
    metrics = Metrics(flags=["beta"])
    cascade = Cascade([Tier(ScriptedModel("small", ["card_arrival"]))])
    services = {"cascades": _Cascades(cascade), "metrics": metrics}
    for flag in (None, "beta"):
        ctx = step_context(
            event_id="e1", workflow="triage", tenant="acme", step="classify",
            options={"cascade": TIERS[:1]}, services=services, flag=flag,
        )  # fmt: skip
        result = await classify(ctx, {"text": "where is my card", "_flag": "beta"})
        assert result["_flag"] == "beta"  # the client's data, kept as data
    text = metrics.render().decode()
    assert _value(text, "sluice_model_calls_total", model="small", flag="none") == 1
    assert _value(text, "sluice_model_calls_total", model="small", flag="beta") == 1
