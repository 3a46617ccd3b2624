"""The pieces of accounting for every call: estimates, zero holds, the first tier, degrade_to."""

from __future__ import annotations

import pytest

from sluice.errors import StepError
from sluice.kv.memory import MemoryKV
from sluice.models.base import ModelRequest, ModelResult
from sluice.models.cascade import Cascade, Tier
from sluice.models.chat_model import ChatModel
from sluice.models.estimate import cost_bound, prompt_tokens
from sluice.models.openai_client import ClientSettings, OpenAIClient
from sluice.models.prices import PriceTable
from sluice.outbound.policy import EgressPolicy
from sluice.reliability.config import SpendSettings, parse_spend
from sluice.reliability.escalation import CostEstimates, EscalationGate, Hold
from sluice.reliability.spend import KVLedger, SpendBudgets
from sluice.testing import ScriptedModel

REQUEST = ModelRequest(text="my card was charged twice")


def _spend(raw: dict[str, object]) -> SpendSettings:
    settings = parse_spend(raw)
    assert settings is not None
    return settings


class PricedModel(ScriptedModel):
    """A scripted model with a local model's per-call price, costing it on every call."""

    def __init__(self, name: str, price: float) -> None:
        super().__init__(name, ["card_arrival"])
        self.price_per_call = price

    async def predict(self, request: ModelRequest) -> ModelResult:
        result = await super().predict(request)
        return ModelResult(result.model, result.output, result.label, 0.9, cost=self.price_per_call)


class Wrapper:
    """A wrapper that keeps its model in ``.model``, as the cache and the batcher do."""

    def __init__(self, model: object) -> None:
        self.model = model


class TestEstimates:
    def test_prompt_tokens_count_text_and_framing(self) -> None:
        parts = [{"type": "text", "text": "y" * 9}, {"type": "image"}]
        messages: list[dict[str, object]] = [
            {"role": "system", "content": "x" * 40},
            {"role": "user", "content": parts},
        ]
        assert prompt_tokens(messages) == 13 + 8  # ceil(49 / 4) + framing

    async def test_chat_model_bound_covers_the_prompt_and_max_tokens(self) -> None:
        prices = PriceTable.from_config({"llm": {"input_per_1k": 1.0, "output_per_1k": 10.0}})
        client = OpenAIClient(
            ClientSettings("http://127.0.0.1:9/v1"), prices=prices, policy=EgressPolicy.loopback()
        )
        try:
            model = ChatModel(client, name="llm", labels=["a", "b"], params={"max_tokens": 20})
            bound = cost_bound(Wrapper(model), REQUEST)  # type: ignore[arg-type]  # duck-typed
            longer = cost_bound(model, ModelRequest(text=REQUEST.text * 10))
            fewer = cost_bound(model, ModelRequest(text=REQUEST.text, params={"max_tokens": 2}))
        finally:
            await client.aclose()
        assert bound is not None
        assert longer is not None
        assert fewer is not None
        assert bound >= 20 * 10.0 / 1000  # at least the most output it may write
        assert longer > bound > fewer

    def test_local_price_per_call_and_unknown_models(self) -> None:
        local = PricedModel("small", 0.0002)
        assert cost_bound(Wrapper(Wrapper(local)), REQUEST) == 0.0002  # type: ignore[arg-type]  # duck-typed
        assert cost_bound(ScriptedModel("custom", ["x"]), REQUEST) is None

    def test_configured_reserve_wins_then_the_estimate(self) -> None:
        costs = CostEstimates(_spend({"reserve": {"large": 0.5}, "default_reserve": 0.01}))
        assert costs.of("large", 0.2) == 0.5
        assert costs.of("llm", 0.2) == 0.2
        assert costs.of("llm") == 0.01


class TestHolds:
    async def test_a_free_call_is_held_even_when_the_budget_is_out(self) -> None:
        spend = _spend({"limits": {"workflow:w": {"amount": 0.001, "on_exhausted": "degrade"}}})
        gate = EscalationGate(None, SpendBudgets(spend.limits, KVLedger(MemoryKV())),
                              CostEstimates(spend))  # fmt: skip
        assert isinstance(await gate.reserve("w", "t", "llm", 0.001), Hold)
        assert await gate.reserve("w", "t", "llm", 0.001) == "spend"
        assert isinstance(await gate.reserve("w", "t", "free", 0.0), Hold)


class TestFirstTier:
    def _gate(self, policy: str) -> tuple[EscalationGate, SpendBudgets]:
        spend = _spend({"limits": {"workflow:w": {"amount": 0.0005, "on_exhausted": policy}}})
        budgets = SpendBudgets(spend.limits, KVLedger(MemoryKV()))
        return EscalationGate(None, budgets, CostEstimates(spend)), budgets

    async def test_the_first_tier_is_held_and_settled(self) -> None:
        gate, budgets = self._gate("refuse")
        llm = PricedModel("llm", 0.0002)
        cascade = Cascade([Tier(llm)])
        seen: list[ModelResult] = []

        async def first(model: str) -> Hold | str:
            return await gate.reserve("w", "t", model, cost_bound(llm, REQUEST))

        for _ in range(2):
            await cascade.run(REQUEST, first=first, on_call=seen.append)
        with pytest.raises(StepError, match="spend budget for 'workflow:w' is exhausted"):
            await cascade.run(REQUEST, first=first)
        status = await budgets.status("workflow:w")
        assert status is not None
        assert (llm.calls, len(seen)) == (2, 2)
        assert status.spent == pytest.approx(0.0004)

    async def test_degrade_answers_from_degrade_to_or_says_what_is_missing(self) -> None:
        gate, _ = self._gate("degrade")
        llm, rules = PricedModel("llm", 0.0003), PricedModel("rules", 0.0)
        models = {"llm": llm, "rules": rules}
        cascade = Cascade([Tier(llm)])

        async def first(model: str) -> Hold | str:
            return await gate.reserve("w", "t", model, cost_bound(models[model], REQUEST))

        assert (await cascade.run(REQUEST, first=first, degrade_to=rules)).tiers_run == ("llm",)
        outcome = await cascade.run(REQUEST, first=first, degrade_to=rules)
        assert (outcome.skipped, outcome.tiers_run) == ("spend", ("rules",))
        assert outcome.result.fallback == "spend"
        with pytest.raises(StepError, match=r"set the step's options\.degrade_to"):
            await cascade.run(REQUEST, first=first)
        assert llm.calls == 1

    async def test_a_call_before_a_refused_tier_still_reaches_the_ledger(self) -> None:
        gate, budgets = self._gate("refuse")
        small, large = PricedModel("small", 0.0001), PricedModel("large", 0.001)
        models = {"small": small, "large": large}
        cascade = Cascade([Tier(small, 1.0), Tier(large)])  # small is never sure enough
        seen: list[ModelResult] = []

        async def hold(model: str) -> Hold | str:
            return await gate.allow("w", "t", model, cost_bound(models[model], REQUEST))

        with pytest.raises(StepError, match="spend budget for 'workflow:w' is exhausted"):
            await cascade.run(REQUEST, hold, first=hold, on_call=seen.append)
        status = await budgets.status("workflow:w")
        assert status is not None
        assert [call.model for call in seen] == ["small"]
        assert status.spent == pytest.approx(0.0001)
        assert large.calls == 0
