"""The runtime end to end on a real SQLite store: order, retries, budgets, caps, admission."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sluice.app import SluiceApp
from sluice.config import parse_settings
from sluice.errors import AdmissionError, InvalidInputError, StepError
from sluice.store.base import EventState
from sluice.workflow import JSONObject, Step, StepContext, Workflow, WorkflowRegistry
from sluice.workflow.builtins import noop

POOLS = {
    "fast": {"concurrency": 4, "queue_limit": 1000},
    "slow": {"concurrency": 3, "queue_limit": 1000},
    "tiny": {"concurrency": 1, "queue_limit": 5},
}

AppFactory = Callable[..., Any]


@pytest.fixture
async def make_runtime(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """Start an app over the given workflows; every app is stopped at the end."""
    apps: list[SluiceApp] = []

    async def make(*workflows: Workflow, run_pools: list[str] | None = None) -> SluiceApp:
        raw = {
            "store": f"sqlite:///{tmp_path / 'rt.db'}",
            "pools": POOLS,
            "runtime": {"poll_ms": 20, "heartbeat_ms": 200},
        }
        settings = parse_settings(raw, tmp_path, environ={})
        app = SluiceApp.from_settings(
            settings, registry=WorkflowRegistry(workflows), run_pools=run_pools
        )
        await app.start()
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.stop()


def _wf(name: str, *steps: Step, budget_ms: int = 10_000, **kw: Any) -> Workflow:
    return Workflow(name=name, version="1", steps=steps, budget_ms=budget_ms, **kw)


async def add_one(ctx: StepContext, data: JSONObject) -> JSONObject:
    return {"n": data["n"] + 1, "seen": [*data.get("seen", []), ctx.step]}


class TestHappyPath:
    async def test_steps_run_in_order_and_chain_outputs(self, make_runtime: AppFactory) -> None:
        """Each step gets the previous output; the event ends done with the last output."""
        wf = _wf(
            "chain",
            Step(name="a", pool="fast", fn=add_one),
            Step(name="b", pool="slow", fn=add_one),
            Step(name="c", pool="fast", fn=add_one),
        )
        app = await make_runtime(wf)
        event_id = await app.runtime.submit("chain", {"n": 0})
        record = await app.runtime.wait(event_id, 5)
        assert record.state is EventState.DONE
        assert record.result == b'{"n":3,"seen":["a","b","c"]}'
        assert [s.name for s in record.steps] == ["a", "b", "c"]
        assert all(s.finished_at >= s.started_at >= s.queued_at for s in record.steps)


class TestFailures:
    async def test_transient_failure_is_retried(self, make_runtime: AppFactory) -> None:
        """A step that fails twice then succeeds completes on its third attempt."""
        calls: list[int] = []

        async def flaky(ctx: StepContext, data: JSONObject) -> JSONObject:
            calls.append(ctx.attempt)
            if ctx.attempt < 3:
                raise ConnectionError("downstream reset")
            return data

        app = await make_runtime(_wf("flaky", Step(name="f", pool="fast", fn=flaky, retries=3)))
        record = await app.runtime.wait(await app.runtime.submit("flaky", {}), 10)
        assert record.state is EventState.DONE
        assert calls == [1, 2, 3]
        assert record.steps[0].attempts == 3

    async def test_retries_run_out(self, make_runtime: AppFactory) -> None:
        """After its retries, the event is dead and says why."""

        async def broken(ctx: StepContext, data: JSONObject) -> JSONObject:
            raise ValueError("always")

        app = await make_runtime(_wf("broken", Step(name="b", pool="fast", fn=broken, retries=1)))
        record = await app.runtime.wait(await app.runtime.submit("broken", {}), 10)
        assert record.state is EventState.DEAD
        assert record.error == (
            "step 'b' raised ValueError: always (no retries left after 2 attempts)"
        )

    async def test_non_retryable_error_is_not_retried(self, make_runtime: AppFactory) -> None:
        """A StepError(retryable=False) dead-letters at once."""
        calls = 0

        async def refuse(ctx: StepContext, data: JSONObject) -> JSONObject:
            nonlocal calls
            calls += 1
            raise StepError("the ticket is in a language we do not serve", retryable=False)

        app = await make_runtime(_wf("refuse", Step(name="r", pool="fast", fn=refuse)))
        record = await app.runtime.wait(await app.runtime.submit("refuse", {}), 5)
        assert record.state is EventState.DEAD
        assert calls == 1
        assert record.error is not None
        assert record.error.endswith("(not retryable)")

    @pytest.mark.parametrize(
        ("output", "message"),
        [
            ([1, 2], "returned list; a step must return a JSON object (dict)"),
            ({"when": object()}, "returned data that cannot be stored as JSON"),
        ],
    )
    async def test_bad_outputs_fail_clearly(
        self, make_runtime: AppFactory, output: Any, message: str
    ) -> None:
        """Bad step outputs dead-letter with a clear error and the pool keeps working."""

        async def bad(ctx: StepContext, data: JSONObject) -> Any:
            return output if data.get("bad") else data

        app = await make_runtime(_wf("bad", Step(name="x", pool="tiny", fn=bad)))
        dead = await app.runtime.wait(await app.runtime.submit("bad", {"bad": True}), 5)
        assert dead.state is EventState.DEAD
        assert dead.error is not None
        assert message in dead.error
        ok = await app.runtime.wait(await app.runtime.submit("bad", {"bad": False}), 5)
        assert ok.state is EventState.DONE

    async def test_step_budget_overrun_is_cancelled_and_retried(
        self, make_runtime: AppFactory
    ) -> None:
        """A step that overruns its budget is cancelled, retried, then dead-lettered."""
        cancelled = 0

        async def hang(ctx: StepContext, data: JSONObject) -> JSONObject:
            nonlocal cancelled
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled += 1
                raise
            return data

        step = Step(name="hang", pool="fast", fn=hang, budget_ms=50, retries=1)
        app = await make_runtime(_wf("hang", step))
        started = time.monotonic()
        record = await app.runtime.wait(await app.runtime.submit("hang", {}), 10)
        assert time.monotonic() - started < 5
        assert record.state is EventState.DEAD
        assert record.error is not None
        assert "overran its step budget of 50 ms" in record.error
        assert cancelled == 2

    async def test_event_budget_stops_retries(self, make_runtime: AppFactory) -> None:
        """A retry that would pass the event budget is not attempted; the error says so."""

        async def slow_fail(ctx: StepContext, data: JSONObject) -> JSONObject:
            raise StepError("provider throttled", retry_after=5.0)

        wf = _wf("short", Step(name="s", pool="fast", fn=slow_fail, retries=5), budget_ms=500)
        app = await make_runtime(wf)
        record = await app.runtime.wait(await app.runtime.submit("short", {}), 5)
        assert record.state is EventState.DEAD
        assert record.error is not None
        assert "would pass the event budget of 500 ms" in record.error

    async def test_replay_after_fix(self, make_runtime: AppFactory) -> None:
        """A dead event replayed after the cause is fixed completes."""
        fixed = False

        async def needs_fix(ctx: StepContext, data: JSONObject) -> JSONObject:
            if not fixed:
                raise StepError("mapping missing", retryable=False)
            return {"ok": True}

        app = await make_runtime(_wf("fixme", Step(name="f", pool="fast", fn=needs_fix)))
        event_id = await app.runtime.submit("fixme", {})
        assert (await app.runtime.wait(event_id, 5)).state is EventState.DEAD
        fixed = True
        assert await app.runtime.replay(event_id) is True
        record = await app.runtime.wait(event_id, 5)
        assert record.state is EventState.DONE
        assert record.error is None


class TestPools:
    async def test_concurrency_cap_holds_under_load(self, make_runtime: AppFactory) -> None:
        """A pool never runs more than its cap at once, and does use all of it."""
        running = 0
        peak = 0

        async def busy(ctx: StepContext, data: JSONObject) -> JSONObject:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            return data

        app = await make_runtime(_wf("busy", Step(name="b", pool="slow", fn=busy)))
        ids = [await app.runtime.submit("busy", {"i": i}) for i in range(120)]
        for event_id in ids:
            assert (await app.runtime.wait(event_id, 10)).state is EventState.DONE
        assert peak == 3
        assert app.runtime.workers["slow"].max_in_flight == 3

    async def test_a_slow_pool_does_not_slow_the_others(self, make_runtime: AppFactory) -> None:
        """With the slow pool saturated, work in the fast pool still finishes quickly."""

        async def crawl(ctx: StepContext, data: JSONObject) -> JSONObject:
            await asyncio.sleep(0.3)
            return data

        app = await make_runtime(
            _wf("crawl", Step(name="c", pool="slow", fn=crawl)),
            _wf("zip", Step(name="z", pool="fast", fn=noop)),
        )
        crawls = [await app.runtime.submit("crawl", {"i": i}) for i in range(30)]
        record = await app.runtime.wait(await app.runtime.submit("zip", {}), 5)
        assert record.state is EventState.DONE
        # The fast event did not queue behind the slow pool: it finished while most of the
        # crawl events (3 at a time, 0.3 s each) were still waiting.
        states = await app.store.event_states(crawls)
        assert sum(s is EventState.ACCEPTED for s in states.values()) >= 20

    async def test_full_first_queue_refuses_new_events(self, make_runtime: AppFactory) -> None:
        """When the first pool's queue is at its limit, submit raises AdmissionError."""
        app = await make_runtime(_wf("t", Step(name="t", pool="tiny", fn=noop)), run_pools=[])
        for i in range(5):
            await app.runtime.submit("t", {"i": i})
        with pytest.raises(AdmissionError, match="queue_limit") as info:
            await app.runtime.submit("t", {"i": 99})
        assert info.value.retry_after > 0

    async def test_invalid_input_lists_every_problem(self, make_runtime: AppFactory) -> None:
        """Input is checked against the workflow's JSON Schema before it is accepted."""
        schema = {
            "type": "object",
            "required": ["text", "tenant"],
            "properties": {"text": {"type": "string"}},
        }
        wf = _wf("typed", Step(name="t", pool="fast", fn=noop), input_schema=schema)
        app = await make_runtime(wf)
        with pytest.raises(InvalidInputError) as info:
            await app.runtime.submit("typed", {"text": 5})
        assert "$.text: expected string, got integer" in info.value.problems
        assert "$: missing required field 'tenant'" in info.value.problems
