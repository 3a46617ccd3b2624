"""GuardedModel: retries within budget and deadline, fail-fast and fallback when open."""

from __future__ import annotations

import asyncio
import random

import pytest

from sluice.errors import StepError
from sluice.models.base import Model, ModelRequest, ModelResult
from sluice.models.cascade import Cascade, Tier
from sluice.models.guarded import GuardedModel, call_deadline, current_deadline
from sluice.reliability.breaker import (
    BreakerOpenError,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
)
from sluice.reliability.retry_budget import RetryBudget, RetryBudgetSettings
from sluice.testing import ManualClock, ScriptedModel

REQUEST = ModelRequest(text="my card was charged twice")


def busy() -> StepError:
    """A retryable failure, as the model client raises on a 503."""
    return StepError("503 from the model server")


def guard(
    model: Model,
    clock: ManualClock,
    *,
    fallback: Model | None = None,
    attempts: int = 3,
    breaker: BreakerSettings | None = None,
    budget: RetryBudgetSettings | None = None,
) -> GuardedModel:
    """Wire a guarded model with one manual clock for breaker, budget and sleeps."""
    return GuardedModel(
        model,
        CircuitBreaker("model:large", breaker or BreakerSettings(), clock=clock),
        RetryBudget(budget or RetryBudgetSettings(), clock=clock),
        fallback,
        attempts,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(0),
    )


class TestRetries:
    async def test_transient_failure_is_retried(self) -> None:
        """A retryable error is retried after a jittered wait and the answer comes back."""
        clock = ManualClock()
        model = ScriptedModel("large", [busy(), "card_charged_twice"])
        guarded = guard(model, clock)
        result = await guarded.predict(REQUEST)
        assert result.label == "card_charged_twice"
        assert model.calls == 2
        assert len(clock.sleeps) == 1
        assert 0.0 <= clock.sleeps[0] <= 0.1
        assert (guarded.name, guarded.version) == ("large", "1")

    async def test_non_retryable_error_is_raised_at_once(self) -> None:
        """A non-retryable error is not retried."""
        model = ScriptedModel("large", [StepError("400 bad request", retryable=False)])
        with pytest.raises(StepError, match="400"):
            await guard(model, ManualClock()).predict(REQUEST)
        assert model.calls == 1

    async def test_attempts_bound_the_calls(self) -> None:
        """A downstream failing every time is called ``attempts`` times, then its error raised."""
        clock = ManualClock()
        model = ScriptedModel("large", [busy()])
        with pytest.raises(StepError, match="503"):
            await guard(model, clock, attempts=3).predict(REQUEST)
        assert model.calls == 3
        assert len(clock.sleeps) == 2

    async def test_retry_after_is_honoured(self) -> None:
        """The wait before a retry is at least the server's Retry-After."""
        clock = ManualClock()
        model = ScriptedModel("large", [StepError("429", retry_after=1.5), "ok"])
        await guard(model, clock).predict(REQUEST, deadline=clock.now + 10)
        assert clock.sleeps[0] >= 1.5

    async def test_no_retry_past_the_deadline(self) -> None:
        """A Retry-After that lands past the deadline ends the call instead of waiting."""
        clock = ManualClock()
        model = ScriptedModel("large", [StepError("429", retry_after=5.0), "ok"])
        with pytest.raises(StepError, match="429"):
            await guard(model, clock).predict(REQUEST, deadline=clock.now + 2.0)
        assert (model.calls, clock.sleeps) == (1, [])

    async def test_deadline_reaches_through_a_cascade(self) -> None:
        """call_deadline bounds a guarded model nested in a cascade; the earlier one wins."""
        clock = ManualClock()
        model = ScriptedModel("large", [StepError("429", retry_after=5.0), "ok"])
        cascade = Cascade([Tier(guard(model, clock))])
        with call_deadline(clock.now + 60), call_deadline(clock.now + 2.0):
            assert current_deadline() == clock.now + 2.0
            with pytest.raises(StepError, match="429"):
                await cascade.predict(REQUEST)
        assert current_deadline() is None
        assert model.calls == 1

    async def test_retry_budget_caps_a_burst(self) -> None:
        """Twenty concurrent failing calls share floor + 10% of retries: 5, not 40."""
        clock = ManualClock()
        model = ScriptedModel("large", [busy()])
        guarded = guard(
            model,
            clock,
            breaker=BreakerSettings(failure_threshold=1000, min_requests=1000),
            budget=RetryBudgetSettings(ratio=0.1, floor=3),
        )
        outcomes = await asyncio.gather(
            *(guarded.predict(REQUEST) for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(o, StepError) for o in outcomes)
        assert model.calls == 20 + 5
        assert guarded.budget.snapshot("model:large").retries == 5


class TestOpenBreaker:
    async def tripped(self, clock: ManualClock, fallback: Model | None) -> GuardedModel:
        """A guarded model whose downstream failed until the breaker opened."""
        model = ScriptedModel("large", [busy()])
        guarded = guard(
            model, clock, fallback=fallback, attempts=1, breaker=BreakerSettings(open_s=30.0)
        )
        for _ in range(5):
            with pytest.raises(StepError):
                await guarded.predict(REQUEST)
        assert guarded.breaker.state is BreakerState.OPEN
        clock.sleeps.clear()
        return guarded

    async def test_fails_fast_without_reaching_the_downstream(self) -> None:
        """While open, calls fail at once: no call reaches the model and nothing waits."""
        clock = ManualClock()
        guarded = await self.tripped(clock, None)
        model = guarded.model
        assert isinstance(model, ScriptedModel)
        for _ in range(200):
            with pytest.raises(BreakerOpenError, match="'model:large' is open") as caught:
                await guarded.predict(REQUEST)
        assert caught.value.retry_after == pytest.approx(30.0)
        assert (model.calls, clock.sleeps) == (5, [])
        assert guarded.breaker.snapshot().counts["rejected"] == 200

    async def test_fallback_answers_at_once(self) -> None:
        """While open, the fallback model answers without a wait or a call to the primary."""
        clock = ManualClock()
        small = ScriptedModel("small", ["card_charged_twice"])
        guarded = await self.tripped(clock, small)
        result = await guarded.predict(REQUEST)
        assert (result.model, result.label) == ("small", "card_charged_twice")
        assert (small.calls, clock.sleeps) == (1, [])

    async def test_breaker_opening_mid_retries_turns_to_the_fallback(self) -> None:
        """When its own failures open the breaker, the call's next attempt uses the fallback."""
        clock = ManualClock()
        large = ScriptedModel("large", [busy()])
        small = ScriptedModel("small", ["lost_card"])
        guarded = guard(large, clock, fallback=small, breaker=BreakerSettings(failure_threshold=2))
        result = await guarded.predict(REQUEST)
        assert (result.model, large.calls, small.calls) == ("small", 2, 1)

    async def test_recovers_through_a_probe(self) -> None:
        """After open_s one probe reaches the primary; its success closes the breaker."""
        clock = ManualClock()
        small = ScriptedModel("small", ["fallback"])
        guarded = await self.tripped(clock, small)
        model = guarded.model
        assert isinstance(model, ScriptedModel)
        model.script = ["card_charged_twice"]
        clock.advance(30.0)
        result = await guarded.predict(REQUEST)
        assert (result.model, guarded.breaker.state) == ("large", BreakerState.CLOSED)

    async def test_other_exceptions_count_but_are_not_retried(self) -> None:
        """A bug-like exception opens the breaker like any failure but is never retried."""
        clock = ManualClock()
        model = ScriptedModel("large", [RuntimeError("connection reset")])
        guarded = guard(model, clock, breaker=BreakerSettings(failure_threshold=1))
        with pytest.raises(RuntimeError):
            await guarded.predict(REQUEST)
        assert (model.calls, guarded.breaker.state) == (1, BreakerState.OPEN)


class SlowModel(ScriptedModel):
    """A scripted model whose every call takes ``seconds`` of real time."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(name, ["card_arrival"])
        self.seconds = seconds

    async def predict(self, request: ModelRequest) -> ModelResult:
        await asyncio.sleep(self.seconds)
        return await super().predict(request)


class TestBulkhead:
    async def test_calls_past_max_in_flight_take_the_fallback_at_once(self) -> None:
        """Ten concurrent calls with room for three: three reach the model, seven fall back."""
        clock = ManualClock()
        large, small = SlowModel("large", 0.05), ScriptedModel("small", ["cash"])
        guarded = GuardedModel(
            large,
            CircuitBreaker("model:large", BreakerSettings(), clock=clock),
            RetryBudget(RetryBudgetSettings(), clock=clock),
            small,
            max_in_flight=3,
        )
        results = await asyncio.gather(*(guarded.predict(REQUEST) for _ in range(10)))
        assert large.calls == 3
        assert small.calls == 7
        assert [r.model for r in results].count("small") == 7
        assert guarded.bulkhead_fallbacks == 7
        assert guarded.in_flight == 0
        await guarded.predict(REQUEST)  # room again once they are done
        assert large.calls == 4

    async def test_without_a_fallback_a_full_bulkhead_fails_fast_and_retryable(self) -> None:
        clock = ManualClock()
        guarded = GuardedModel(
            SlowModel("large", 0.05),
            CircuitBreaker("model:large", BreakerSettings(), clock=clock),
            RetryBudget(RetryBudgetSettings(), clock=clock),
            max_in_flight=1,
        )
        first = asyncio.create_task(guarded.predict(REQUEST))
        await asyncio.sleep(0)
        with pytest.raises(StepError, match="max_in_flight") as err:
            await guarded.predict(REQUEST)
        assert err.value.retryable
        await first
