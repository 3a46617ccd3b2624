"""The OpenAI wire protocol through Sluice, driven by the official ``openai`` client."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.ai_gateway.conftest import StackFactory, sim_stats

QUESTION = "I still have not received my new card, when will it arrive?"
JSON = {"content-type": "application/json"}


def ask(text: str = QUESTION) -> list[ChatCompletionMessageParam]:
    """One user message."""
    return [{"role": "user", "content": text}]


async def test_completion_is_the_providers_answer(make_stack: StackFactory) -> None:
    """A plain completion comes back as the simulator answered it, with usage and model."""
    stack = await make_stack()
    async with httpx.AsyncClient() as http:
        direct = await http.post(
            f"{stack.primary.base_url}/chat/completions",
            json={"model": "sim-a", "messages": ask()},
        )
    async with stack.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model="chat", messages=ask())
        answer = raw.parse()
    assert raw.headers["x-sluice-deployment"] == "primary"
    assert len(raw.headers["x-correlation-id"]) >= 8
    expected = direct.json()
    assert answer.choices[0].message.content == expected["choices"][0]["message"]["content"]
    assert answer.model == "sim-a"
    assert answer.usage is not None
    assert answer.usage.total_tokens == expected["usage"]["total_tokens"]
    assert answer.system_fingerprint == "sluice-simulator"


async def test_streaming_passes_the_chunks_through(make_stack: StackFactory) -> None:
    """``stream=True`` yields chunks that add up to the plain answer; usage only when asked."""
    stack = await make_stack()
    async with stack.client() as client:
        plain = await client.chat.completions.create(
            model="chat", messages=ask(), extra_headers={"x-sluice-cache": "bypass"}
        )
        chunks = [
            chunk
            async for chunk in await client.chat.completions.create(
                model="chat", messages=ask(), stream=True,
                extra_headers={"x-sluice-cache": "bypass"},
            )
        ]  # fmt: skip
        with_usage = [
            chunk
            async for chunk in await client.chat.completions.create(
                model="chat", messages=ask(), stream=True,
                stream_options={"include_usage": True},
                extra_headers={"x-sluice-cache": "bypass"},
            )
        ]  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert len(chunks) > 3  # really streamed, not one lump
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert with_usage[-1].choices == []
    assert with_usage[-1].usage is not None
    assert plain.usage is not None
    assert with_usage[-1].usage.total_tokens == plain.usage.total_tokens
    assert (await sim_stats(stack.primary))["requests"] == 3


async def test_models_lists_the_groups(make_stack: StackFactory) -> None:
    """``GET /v1/models`` lists the model groups a client may name."""
    stack = await make_stack()
    async with stack.client() as client:
        models = await client.models.list()
    assert sorted(m.id for m in models.data) == ["chat", "solo"]


async def test_a_bad_key_is_refused(make_stack: StackFactory) -> None:
    """Without a valid Sluice API key: 401, OpenAI-shaped, and no call to the provider."""
    stack = await make_stack()
    async with openai.AsyncOpenAI(
        base_url=stack.url + "/v1", api_key="sk_nope_nope", max_retries=0
    ) as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(model="chat", messages=ask())
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    assert refused.value.status_code == 401
    assert refused.value.code == "invalid_api_key"
    assert (await sim_stats(stack.primary))["requests"] == 0


async def test_unknown_model_is_a_404(make_stack: StackFactory) -> None:
    """A model that is not a configured group: 404 model_not_found, naming the known ones."""
    stack = await make_stack()
    async with stack.client() as client:
        with pytest.raises(openai.NotFoundError) as refused:
            await client.chat.completions.create(model="gpt-9", messages=ask())
    assert refused.value.code == "model_not_found"
    assert "chat, solo" in refused.value.message


async def test_malformed_bodies_are_400s(make_stack: StackFactory) -> None:
    """Broken JSON, a missing field or a wrong type: 400 with the reason, nothing relayed."""
    stack = await make_stack()
    bodies = [
        b"{not json",
        b"[1, 2]",
        orjson.dumps({"model": "chat"}),
        orjson.dumps({"model": "chat", "messages": ["hi"]}),
        orjson.dumps({"model": "chat", "messages": ask(), "stream": "yes"}),
    ]
    async with stack.http() as http:
        answers = [
            await http.post("/v1/chat/completions", content=body, headers=stack.auth() | JSON)
            for body in bodies
        ]
    assert [a.status_code for a in answers] == [400] * len(bodies)
    errors = [a.json()["error"] for a in answers]
    assert {e["type"] for e in errors} == {"invalid_request_error"}
    assert "not valid JSON" in errors[0]["message"]
    assert "messages: required" in errors[2]["message"]
    assert "'role'" in errors[3]["message"]
    assert "stream: must be true or false" in errors[4]["message"]
    assert (await sim_stats(stack.primary))["requests"] == 0


async def test_a_body_over_the_limit_is_a_413(make_stack: StackFactory) -> None:
    """A body past ``max_body_bytes`` is refused with 413 before it is parsed."""
    stack = await make_stack(extra="max_body_bytes: 2048")
    body = orjson.dumps({"model": "chat", "messages": ask("x" * 4096)})
    async with stack.http() as http:
        answer = await http.post("/v1/chat/completions", content=body, headers=stack.auth() | JSON)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "request_too_large"


def _nested(depth: int) -> bytes:
    """A chat body whose message content nests lists ``depth`` deep."""
    content = b"[" * depth + b'"hi"' + b"]" * depth
    return b'{"model": "chat", "messages": [{"role": "user", "content": ' + content + b"}]}"


async def test_malformed_requests_are_openai_shaped_and_call_nobody(
    make_stack: StackFactory,
) -> None:
    """Content nested 256 deep (orjson reads it, cannot write it back), past the parser's own
    limit, or a few levels past the ingress's 32; a repeated Authorization or
    Idempotency-Key; an empty or long key: each an OpenAI-shaped 400 naming the rule, before
    any key is claimed or any provider called. Within the limits the same body is answered."""
    stack = await make_stack()
    auth = stack.auth() | JSON
    cases: list[tuple[bytes, list[tuple[str, str]], str]] = [
        (_nested(256), [], "JSON nesting deeper than 32 levels"),
        (_nested(1_100), [], "JSON nesting deeper than 32 levels"),
        (_nested(30), [], "JSON nesting deeper than 32 levels"),  # 33 levels in all
        (orjson.dumps({"model": "chat", "messages": ask()}), [*stack.auth().items()],
         "the authorization header is sent more than once: send it once"),
        (orjson.dumps({"model": "chat", "messages": ask()}),
         [("idempotency-key", "a"), ("idempotency-key", "b")],
         "the idempotency-key header is sent more than once: send it once"),
        (orjson.dumps({"model": "chat", "messages": ask()}), [("idempotency-key", "")],
         "Idempotency-Key is empty or blank: send 1 to 255 visible characters, or no header"),
        (orjson.dumps({"model": "chat", "messages": ask()}),
         [("idempotency-key", "k" * 4096)],  # within any header size limit of the server
         "Idempotency-Key is longer than 255 characters"),
    ]  # fmt: skip
    async with stack.http() as http:
        for body, extra, message in cases:
            answer = await http.post(
                "/v1/chat/completions", content=body, headers=[*auth.items(), *extra]
            )
            assert answer.status_code == 400, message
            assert answer.headers["content-type"] == "application/json"
            error = answer.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["message"].startswith(message)
        assert (await sim_stats(stack.primary))["requests"] == 0
        ai = stack.app.services["ai_gateway"]
        assert len(ai.keys) == 0  # no idempotency key claimed
        fine = await http.post("/v1/chat/completions", content=_nested(28), headers=auth)
        assert fine.status_code == 200


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_json_by_its_media_type_is_a_415(
    make_stack: StackFactory, ctype: str | None
) -> None:
    """The chat route reads application/json only: anything else is an OpenAI-shaped 415."""
    stack = await make_stack()
    headers = stack.auth() | ({} if ctype is None else {"content-type": ctype})
    body = orjson.dumps({"model": "chat", "messages": ask()})
    async with stack.http() as http:
        answer = await http.post("/v1/chat/completions", content=body, headers=headers)
        charset = await http.post(
            "/v1/chat/completions", content=body,
            headers=stack.auth() | {"content-type": "Application/JSON; charset=utf-8"},
        )  # fmt: skip
    assert answer.status_code == 415
    assert answer.json()["error"] == {
        "message": "send the body as application/json (Content-Type)",
        "type": "invalid_request_error", "param": None, "code": "unsupported_media_type",
    }  # fmt: skip
    assert charset.status_code == 200
    assert (await sim_stats(stack.primary))["requests"] == 1


async def test_an_oversized_idempotency_key_is_a_400(make_stack: StackFactory) -> None:
    """An idempotency key is an id: past 255 characters it is refused, nothing relayed."""
    stack = await make_stack()
    async with stack.client() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model="chat", messages=ask(), extra_headers={"Idempotency-Key": "k" * 256}
            )
    assert "Idempotency-Key is longer than 255 characters" in refused.value.message
    assert (await sim_stats(stack.primary))["requests"] == 0
