"""The machinery of workflow steps on the gateway: limits, cache, idempotency, breakers, budgets."""

from __future__ import annotations

import asyncio

import httpx
import openai
import orjson
import pytest

from sluice.drills.simulator import SimulatorSettings
from tests.ai_gateway.conftest import StackFactory, sim_stats
from tests.ai_gateway.test_chat import ask

FAILING = SimulatorSettings(error_rate=1.0, seed=1)


async def test_request_rate_limit_is_a_429_with_retry_after(make_stack: StackFactory) -> None:
    """Past the tenant's burst: 429 rate_limit_exceeded with Retry-After; others unaffected."""
    stack = await make_stack()
    async with stack.client("slow") as slow, stack.client("acme") as acme:
        for _ in range(2):
            await slow.chat.completions.create(model="chat", messages=ask())
        with pytest.raises(openai.RateLimitError) as refused:
            await slow.chat.completions.create(model="chat", messages=ask())
        await acme.chat.completions.create(model="chat", messages=ask())
    assert refused.value.code == "rate_limit_exceeded"
    assert int(refused.value.response.headers["retry-after"]) >= 1


async def test_token_limit_counts_the_tokens_used(make_stack: StackFactory) -> None:
    """A tenant past its tokens per minute is refused until the minute turns."""
    stack = await make_stack()
    async with stack.client("wordy") as client:
        first = await client.chat.completions.create(model="chat", messages=ask())
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="chat", messages=ask("another one"))
    assert first.usage is not None
    assert first.usage.total_tokens > 10
    assert "tokens this minute" in refused.value.message
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60


async def test_identical_requests_call_the_provider_once(make_stack: StackFactory) -> None:
    """The second identical request is a cache hit: one upstream call; streams replay it."""
    stack = await make_stack()
    async with stack.client() as client:
        first = await client.chat.completions.with_raw_response.create(model="chat", messages=ask())
        second = await client.chat.completions.with_raw_response.create(
            model="chat", messages=ask()
        )
        streamed = [
            c
            async for c in await client.chat.completions.create(
                model="chat", messages=ask(), stream=True
            )
        ]
    assert (await sim_stats(stack.primary))["requests"] == 1
    assert second.headers["x-sluice-cache"] == "hit"
    assert "x-sluice-cache" not in first.headers
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    text = "".join(c.choices[0].delta.content or "" for c in streamed)
    assert text == first.parse().choices[0].message.content
    cache = (await stack.status())["caches"]["gateway_cache"]
    assert cache["hits"] == 2
    assert cache["entries"] == 1


async def test_an_idempotency_key_replays_the_first_answer(make_stack: StackFactory) -> None:
    """Concurrent repeats of one key share one call; a different body with it is a 409."""
    stack = await make_stack(primary=SimulatorSettings(p50_ms=150, p95_ms=200, seed=2))
    key = {"Idempotency-Key": "order-42", "x-sluice-cache": "bypass"}
    async with stack.client() as client:
        answers = await asyncio.gather(
            *[
                client.chat.completions.with_raw_response.create(
                    model="chat", messages=ask(), extra_headers=key
                )
                for _ in range(3)
            ]
        )
        later = await client.chat.completions.create(
            model="chat", messages=ask(), extra_headers=key
        )
        with pytest.raises(openai.ConflictError) as conflict:
            await client.chat.completions.create(
                model="chat", messages=ask("something else"), extra_headers=key
            )
    assert (await sim_stats(stack.primary))["requests"] == 1
    ids = {a.parse().id for a in answers} | {later.id}
    assert len(ids) == 1
    replays = [a.headers.get("x-sluice-idempotent-replay") for a in answers]
    assert sorted(replays, key=str) == [None, "true", "true"]
    assert conflict.value.code == "idempotency_conflict"


async def test_a_streamed_first_answer_is_replayed_as_a_stream(make_stack: StackFactory) -> None:
    """A stream with an idempotency key is kept whole and replayed as events."""
    stack = await make_stack()
    key = {"Idempotency-Key": "stream-7", "x-sluice-cache": "bypass"}
    async with stack.client() as client:
        runs = []
        for _ in range(2):
            stream = await client.chat.completions.create(
                model="chat", messages=ask(), stream=True, extra_headers=key
            )
            runs.append([c async for c in stream])
    assert (await sim_stats(stack.primary))["requests"] == 1
    texts = ["".join(c.choices[0].delta.content or "" for c in run if c.choices) for run in runs]
    assert texts[0] == texts[1]
    assert texts[0].startswith('{"label"')
    assert {c.id for run in runs for c in run} == {runs[0][0].id}


async def test_a_failing_provider_opens_its_breaker_and_the_backup_answers(
    make_stack: StackFactory,
) -> None:
    """The primary answers 500: the backup answers every request, and after two failures the
    primary's breaker is open, so it is not called any more."""
    stack = await make_stack(primary=FAILING)
    async with stack.client() as client:
        answers = [
            await client.chat.completions.with_raw_response.create(
                model="chat", messages=ask(f"question {i}")
            )
            for i in range(5)
        ]
    assert {a.headers["x-sluice-deployment"] for a in answers} == {"backup"}
    assert {a.parse().model for a in answers} == {"sim-b"}
    assert (await sim_stats(stack.primary))["requests"] == 2  # failure_threshold, then open
    assert (await sim_stats(stack.backup))["requests"] == 5
    breakers = {b["name"]: b for b in (await stack.status())["breakers"]}
    assert breakers["gateway:primary"]["state"] == "open"
    assert breakers["gateway:backup"]["state"] == "closed"


async def test_a_group_with_every_breaker_open_is_a_503(make_stack: StackFactory) -> None:
    """Failures relay as 502 until the breaker opens; then 503 at once, with Retry-After."""
    stack = await make_stack(primary=FAILING)
    async with stack.client() as client:
        failures = []
        for i in range(2):
            with pytest.raises(openai.InternalServerError) as failed:
                await client.chat.completions.create(model="solo", messages=ask(f"q{i}"))
            failures.append(failed.value)
        with pytest.raises(openai.InternalServerError) as unavailable:
            await client.chat.completions.create(model="solo", messages=ask("q3"))
    assert [f.status_code for f in failures] == [502, 502]
    assert failures[0].code == "upstream_500"
    assert unavailable.value.status_code == 503
    assert unavailable.value.code == "service_unavailable"
    assert int(unavailable.value.response.headers["retry-after"]) >= 1
    assert (await sim_stats(stack.primary))["requests"] == 2


async def test_an_exhausted_spend_budget_is_a_429_not_to_retry(make_stack: StackFactory) -> None:
    """The tenant's budget covers one call: the next is refused as insufficient_quota."""
    stack = await make_stack()
    headers = {"x-sluice-cache": "bypass"}
    async with stack.client("poor") as client:
        await client.chat.completions.create(
            model="chat", messages=ask("card?"), max_tokens=10, extra_headers=headers
        )
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(
                model="chat", messages=ask("card?"), max_tokens=10, extra_headers=headers
            )
    assert refused.value.code == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert "spend budget for 'tenant:poor' is exhausted" in refused.value.message
    assert (await sim_stats(stack.primary))["requests"] == 1


async def test_the_slo_guard_fails_closed(make_stack: StackFactory) -> None:
    """A group whose error rate slips past its SLO is refused with 503 while its guard is shut;
    the other group has a guard of its own."""
    stack = await make_stack(
        primary=FAILING,
        extra="slo: {p95_ms: 1000, error_rate: 0.1, policy: fail_closed, min_events: 2}",
    )
    async with stack.client() as client:
        for i in range(2):
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="solo", messages=ask(f"q{i}"))
        with pytest.raises(openai.InternalServerError) as refused:
            await client.chat.completions.create(model="solo", messages=ask("q"))
        answered = await client.chat.completions.create(model="chat", messages=ask("q"))
    assert refused.value.status_code == 503
    assert "SLO slipped (error rate 100.0% > 10.0%)" in refused.value.message
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert answered.model == "sim-b"  # the chat group's guard is still open: backup answers
    assert (await sim_stats(stack.primary))["requests"] == 3  # 2 solo, 1 chat before its breaker


async def test_a_caller_who_leaves_ends_the_providers_stream(make_stack: StackFactory) -> None:
    """Closing the connection mid-stream cancels the upstream stream: nothing keeps running."""
    stack = await make_stack(primary=SimulatorSettings(stream_chunk_ms=100))
    body = orjson.dumps({"model": "chat", "messages": ask(), "stream": True})
    async with (
        stack.http() as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            content=body,
            headers=stack.auth() | {"content-type": "application/json"},
        ) as resp,
    ):
        assert resp.status_code == 200
        async for _ in resp.aiter_bytes():
            break  # one event, then the caller is gone
    stats = await sim_stats(stack.primary)
    for _ in range(100):
        if stats["streams_open"] == 0:
            break
        await asyncio.sleep(0.05)
        stats = await sim_stats(stack.primary)
    assert stats["streams_open"] == 0
    assert stats["streams_cancelled"] == 1


async def test_gateway_metrics_count_answers_tokens_and_cost(make_stack: StackFactory) -> None:
    """/metrics carries the gateway's answers, tokens and cost by deployment."""
    stack = await make_stack()
    async with stack.client() as client:
        answer = await client.chat.completions.create(model="chat", messages=ask())
    async with httpx.AsyncClient(base_url=stack.url) as http:
        text = (await http.get("/metrics")).text
    assert answer.usage is not None
    assert 'sluice_gateway_requests_total{model="chat",outcome="answered"} 1.0' in text
    assert 'sluice_http_requests_total{route="chat:completions",status="200"} 1.0' in text
    line = 'sluice_gateway_tokens_total{deployment="primary",kind="input"} '
    assert f"{line}{answer.usage.prompt_tokens:.1f}" in text
    cost = answer.usage.prompt_tokens / 1000 + answer.usage.completion_tokens * 2 / 1000
    assert f'sluice_gateway_cost_total{{deployment="primary"}} {cost!r}' in text
