"""step_context: a step called as a plain function sees what the runtime would give it."""

from __future__ import annotations

import time

import pytest

from sluice.errors import StepError
from sluice.kv.memory import MemoryKV
from sluice.models.base import ModelRequest
from sluice.testing import ScriptedModel, step_context
from sluice.workflow import JSONObject, StepContext


async def label_ticket(ctx: StepContext, data: JSONObject) -> JSONObject:
    """A custom step: asks the ``classifier`` service, remembers the label per tenant."""
    result = await ctx.service("classifier").predict(
        ModelRequest(text=data["text"], labels=ctx.options["labels"])
    )
    await ctx.service("kv").set(f"{ctx.tenant}:{ctx.idempotency_key}", result.label.encode())
    return {"label": result.label, "attempt": ctx.attempt}


class TestStepContext:
    async def test_a_custom_step_runs_with_its_options_services_and_tenant(self) -> None:
        """The step reaches its fakes through ctx.service and reads its options and tenant."""
        model, kv = ScriptedModel("clf", ["lost_card"]), MemoryKV()
        ctx = step_context(
            step="label", options={"labels": ["lost_card", "other"]},
            services={"classifier": model, "kv": kv}, tenant="acme", event_id="evt_1",
        )  # fmt: skip
        assert await label_ticket(ctx, {"text": "I lost my card"}) == {
            "label": "lost_card",
            "attempt": 1,
        }
        assert model.requests[0].labels == ["lost_card", "other"]
        assert await kv.get("acme:evt_1:label") == b"lost_card"

    def test_defaults_are_those_of_a_first_attempt_with_time_left(self) -> None:
        """Without arguments: attempt 1, the default tenant, a deadline ahead, no services."""
        before = time.time()
        ctx = step_context(budget_s=5.0)
        assert (ctx.attempt, ctx.tenant, ctx.flag, dict(ctx.options)) == (1, "default", None, {})
        assert before + 5.0 <= ctx.deadline <= time.time() + 5.0
        assert ctx.idempotency_key == f"{ctx.event_id}:{ctx.step}"

    def test_a_missing_service_fails_the_step_as_in_the_runtime(self) -> None:
        """Asking for a service the test did not give is the runtime's non-retryable error."""
        with pytest.raises(StepError, match="needs service 'classifier'") as raised:
            step_context(step="label").service("classifier")
        assert raised.value.retryable is False
