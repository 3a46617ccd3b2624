"""ScriptedModel: a real Model whose answers, errors and latency follow a script."""

from __future__ import annotations

import asyncio

import pytest

from sluice.errors import StepError
from sluice.models.base import Model, ModelRequest, ModelResult
from sluice.models.cascade import Cascade, Tier
from sluice.testing import ManualClock, Reply, ScriptedModel


def ask(text: str = "where is my card") -> ModelRequest:
    """A request with ``text``."""
    return ModelRequest(text=text)


class TestScript:
    async def test_labels_answer_in_order_and_the_last_repeats(self) -> None:
        """Each call plays the next entry; past the end, the last one again."""
        model = ScriptedModel("small", ["a", "b"], confidence=0.7)
        labels = [(await model.predict(ask())).label for _ in range(4)]
        assert labels == ["a", "b", "b", "b"]
        result = await model.predict(ask())
        assert (result.model, result.output, result.confidence) == ("small", {"label": "b"}, 0.7)

    async def test_errors_are_raised_and_count_as_calls(self) -> None:
        """An exception in the script is raised by that call, which still counts."""
        busy = StepError("503 from the model server")
        model = ScriptedModel("large", [busy, "card_arrival"])
        with pytest.raises(StepError) as raised:
            await model.predict(ask())
        assert raised.value is busy
        assert (await model.predict(ask())).label == "card_arrival"
        assert model.calls == 2

    async def test_a_whole_result_is_returned_as_it_is(self) -> None:
        """A ModelResult in the script comes back unchanged (cost, usage, flags)."""
        given = ModelResult("llm", {"label": "x"}, "x", 0.99, cost=0.01, cached=True)
        assert await ScriptedModel("llm", [given]).predict(ask()) is given

    async def test_requests_are_recorded(self) -> None:
        """Every request is kept in order, the failed ones too."""
        model = ScriptedModel("small", [ValueError("bad"), "ok"])
        with pytest.raises(ValueError, match="bad"):
            await model.predict(ask("first"))
        await model.predict(ask("second"))
        assert [r.text for r in model.requests] == ["first", "second"]

    def test_an_empty_script_is_refused(self) -> None:
        """A model with nothing to play is a mistake in the test, said at once."""
        with pytest.raises(ValueError, match="at least one entry"):
            ScriptedModel("small", [])


class TestLatency:
    async def test_latency_per_call_passes_on_the_given_clock(self) -> None:
        """Reply gives one call its own latency; the others take the model's default."""
        clock = ManualClock()
        model = ScriptedModel(
            "large", [Reply("a", latency_s=2.0), "b"], latency_s=0.5, sleep=clock.sleep
        )
        first = await model.predict(ask())
        second = await model.predict(ask())
        assert clock.sleeps == [2.0, 0.5]
        assert (first.latency_ms, second.latency_ms) == (2000.0, 500.0)

    async def test_an_error_can_come_late(self) -> None:
        """A Reply wrapping an error waits first, then raises: a timeout-like failure."""
        clock = ManualClock()
        late = Reply(TimeoutError("slow"), latency_s=5.0)
        model = ScriptedModel("large", [late], sleep=clock.sleep)
        with pytest.raises(TimeoutError):
            await model.predict(ask())
        assert clock() == 1005.0

    async def test_real_latency_lets_calls_overlap(self) -> None:
        """With the default sleep the latency is real time, so concurrent calls overlap."""
        model = ScriptedModel("large", ["a"], latency_s=60.0)
        calls = [asyncio.create_task(model.predict(ask())) for _ in range(5)]
        await asyncio.sleep(0)  # each call starts and waits out its latency
        assert model.calls == 5
        assert not any(call.done() for call in calls)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)


async def test_it_is_a_model_a_cascade_can_use() -> None:
    """A low-confidence scripted tier escalates to the next one, as a real model would."""
    small: Model = ScriptedModel("small", ["maybe"], confidence=0.5)
    large = ScriptedModel("large", ["card_arrival"])
    cascade = Cascade([Tier(small, threshold=0.9), Tier(large)])
    result = await cascade.predict(ask())
    assert result.model == "large"
    assert large.calls == 1
