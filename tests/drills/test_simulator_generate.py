"""The simulator's generative mode, through the official ``openai`` client on a real socket:
deterministic text, structured output that validates (and a share that does not), tool calls."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import ConfigError
from sluice.models.base import ModelRequest, ModelResult
from sluice.models.chat_model import label_schema
from sluice.models.openai_client import JsonOutput
from sluice.prompts import load_prompts

TRIAGE = Path(__file__).resolve().parents[2] / "examples" / "triage"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["reply", "needs_review", "priority", "tags", "customer"],
    "properties": {
        "reply": {"type": "string", "minLength": 20, "maxLength": 400},
        "needs_review": {"type": "boolean"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "intent": {"enum": ["card_arrival", "exchange_rate", "refund"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
        "customer": {
            "type": "object",
            "required": ["name", "since"],
            "properties": {
                "name": {"type": "string"},
                "since": {"type": "string", "format": "date"},
            },
        },
        "note": {"type": ["string", "null"]},
    },
}
LOOKUP: Any = {
    "type": "function",
    "function": {
        "name": "lookup_card",
        "description": "Where a customer's card is in delivery.",
        "parameters": {
            "type": "object",
            "required": ["card_id", "include_history"],
            "properties": {
                "card_id": {"type": "string", "minLength": 6},
                "include_history": {"type": "boolean"},
                "days": {"type": "integer", "minimum": 1, "maximum": 30},
            },
        },
    },
}
REFUND: Any = {
    "type": "function",
    "function": {
        "name": "refund",
        "parameters": {
            "type": "object",
            "required": ["amount"],
            "properties": {"amount": {"type": "number", "exclusiveMinimum": 0}},
        },
    },
}


class FixedLabel:
    """A classifier that always answers ``card_arrival``: the simulator's model for label
    requests."""

    name = "fixed"
    version = "1"

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Answer ``card_arrival`` with confidence 0.9."""
        return ModelResult(
            model=self.name, output={"label": "card_arrival"}, label="card_arrival", confidence=0.9
        )


Client = Callable[..., Any]


@asynccontextmanager
async def simulator(**settings: Any) -> AsyncIterator[tuple[openai.AsyncOpenAI, ModelSimulator]]:
    """A generative simulator on a free port, and an official client for it."""
    sim = ModelSimulator(FixedLabel(), SimulatorSettings(mode="generate", seed=7, **settings))
    async with SimulatorServer(sim) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        try:
            yield client, sim
        finally:
            await client.close()


def ask(text: str) -> list[Any]:
    """A system and a user message (plain dicts: the wire shape, which the client's types
    spell as TypedDicts)."""
    return [
        {"role": "system", "content": "You help bank customers."},
        {"role": "user", "content": text},
    ]


def structured(schema: dict[str, Any]) -> Any:
    """The ``response_format`` that asks for ``schema``."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }


class TestText:
    async def test_the_same_prompt_gets_the_same_text(self) -> None:
        """Text is derived from the messages: equal prompts, equal answers; another prompt,
        another answer."""
        async with simulator() as (client, _):
            first = await client.chat.completions.create(
                model="gen", messages=ask("Where is my card?")
            )
            again = await client.chat.completions.create(
                model="gen", messages=ask("Where is my card?")
            )
            other = await client.chat.completions.create(model="gen", messages=ask("Refund me."))
        assert first.choices[0].message.content == again.choices[0].message.content
        assert first.choices[0].message.content != other.choices[0].message.content
        assert first.choices[0].finish_reason == "stop"
        assert first.system_fingerprint == "sluice-simulator"

    async def test_text_has_realistic_length_and_consistent_usage(self) -> None:
        """Answers run to tens of words in sentences, and usage counts four characters a token."""
        messages = ask("My card has not arrived after two weeks, what should I do?")
        async with simulator() as (client, _):
            answer = await client.chat.completions.create(model="gen", messages=messages)
        content = answer.choices[0].message.content
        assert content is not None
        assert 40 <= len(content.split()) <= 160
        assert content.endswith(".")
        assert answer.usage is not None
        assert answer.usage.completion_tokens == math.ceil(len(content) / 4)
        prompt_chars = sum(len(m["content"]) for m in messages)
        assert answer.usage.prompt_tokens == math.ceil(prompt_chars / 4)
        assert (
            answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
        )

    async def test_max_tokens_cuts_the_text(self) -> None:
        """A ``max_tokens`` shorter than the answer cuts it, with ``finish_reason: length``."""
        async with simulator() as (client, _):
            answer = await client.chat.completions.create(
                model="gen", messages=ask("Hello"), max_tokens=5
            )
        assert answer.choices[0].finish_reason == "length"
        assert len(answer.choices[0].message.content or "") <= 20
        assert answer.usage is not None
        assert answer.usage.completion_tokens <= 5

    async def test_a_stream_carries_the_same_text(self) -> None:
        """Streamed, the deltas join to the text the plain answer has."""
        async with simulator() as (client, _):
            plain = await client.chat.completions.create(model="gen", messages=ask("Stream it"))
            stream = await client.chat.completions.create(
                model="gen", messages=ask("Stream it"), stream=True
            )
            chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            plain.choices[0].message.content
        )
        assert chunks[-1].choices[0].finish_reason == "stop"

    async def test_label_requests_are_still_classified(self) -> None:
        """A request with a label enum gets the model's label, in generate mode too."""
        output = JsonOutput(label_schema(["card_arrival", "refund"]), name="classification")
        response_format: Any = output.response_format()
        async with simulator() as (client, sim):
            answer = await client.chat.completions.create(
                model="gen", messages=ask("card?"), response_format=response_format
            )
        assert json.loads(answer.choices[0].message.content or "") == {
            "label": "card_arrival",
            "confidence": 0.9,
        }
        assert sim.stats.generated == 0


class TestStructuredOutput:
    async def test_answers_validate_against_the_schema(self) -> None:
        """Forty prompts, forty answers that validate: objects, required fields, bounds, enums,
        arrays with minItems, nested objects, nullable types."""
        async with simulator() as (client, sim):
            answers = [
                await client.chat.completions.create(
                    model="gen",
                    messages=ask(f"ticket {i}"),
                    response_format=structured(SCHEMA),
                )
                for i in range(40)
            ]
        values = [json.loads(a.choices[0].message.content or "") for a in answers]
        for value in values:
            jsonschema.validate(value, SCHEMA)
        assert len({v["reply"] for v in values}) == 40
        assert {v["needs_review"] for v in values} == {True, False}
        assert any("intent" in v for v in values)
        assert any("intent" not in v for v in values)
        assert sim.stats.generated == 40
        assert sim.stats.invalid == 0

    async def test_the_triage_draft_schema(self) -> None:
        """The triage app's draft template, rendered and sent as it is, gets a valid draft."""
        rendered = load_prompts(TRIAGE)["draft_reply"].render(
            {
                "ticket": "My card has not arrived",
                "intent": "card_arrival",
                "kb_reply": "Wait 5 days.",
            }
        )
        assert rendered.output_schema is not None
        async with simulator() as (client, _):
            answer = await client.chat.completions.create(
                model="gen",
                messages=list[Any](rendered.messages),
                response_format=structured(rendered.output_schema),
                **rendered.params,
            )
        jsonschema.validate(
            json.loads(answer.choices[0].message.content or ""), rendered.output_schema
        )

    async def test_a_share_does_not_validate(self) -> None:
        """With ``invalid_rate`` 0.5, some answers break the schema (to exercise repair), the
        rest validate, and the simulator counts the broken ones."""
        validator = jsonschema.Draft202012Validator(SCHEMA)
        async with simulator(invalid_rate=0.5) as (client, sim):
            contents = [
                (
                    await client.chat.completions.create(
                        model="gen",
                        messages=ask(f"ticket {i}"),
                        response_format=structured(SCHEMA),
                    )
                )
                .choices[0]
                .message.content
                or ""
                for i in range(40)
            ]
        valid = [c for c in contents if _validates(validator, c)]
        assert 5 <= len(valid) <= 35
        assert sim.stats.invalid == 40 - len(valid)

    async def test_every_answer_broken_at_rate_one(self) -> None:
        """At ``invalid_rate`` 1.0 no answer validates, for a schema without required fields too."""
        loose = {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
        }
        async with simulator(invalid_rate=1.0) as (client, _):
            contents = [
                (
                    await client.chat.completions.create(
                        model="gen",
                        messages=ask(f"q {i}"),
                        response_format=structured(schema),
                    )
                )
                .choices[0]
                .message.content
                or ""
                for i, schema in enumerate([SCHEMA, loose, {"type": "object"}])
            ]
        for content, schema in zip(contents, [SCHEMA, loose, {"type": "object"}], strict=True):
            assert not _validates(jsonschema.Draft202012Validator(schema), content)

    async def test_a_schema_it_cannot_fill_is_a_server_error(self) -> None:
        """An unsatisfiable schema gets the provider's 500, not a crash of the simulator."""
        schema = {
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"type": "integer", "minimum": 10, "maximum": 1}},
        }
        async with simulator() as (client, sim):
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(
                    model="gen", messages=ask("n?"), response_format=structured(schema)
                )
        assert sim.stats.errors == 1


class TestToolCalls:
    async def test_a_tool_call_for_a_declared_tool(self) -> None:
        """At ``tool_call_rate`` 1 the answer calls a declared function, with arguments that
        validate against its parameters, and usage counts them."""
        async with simulator(tool_call_rate=1.0) as (client, sim):
            answer = await client.chat.completions.create(
                model="gen",
                messages=ask("Where is card 1234567?"),
                tools=[LOOKUP, REFUND],
            )
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        (call,) = choice.message.tool_calls or []
        assert call.type == "function"
        assert call.id.startswith("call_")
        tools = {t["function"]["name"]: t["function"]["parameters"] for t in (LOOKUP, REFUND)}
        assert call.function.name in tools
        jsonschema.validate(json.loads(call.function.arguments), tools[call.function.name])
        assert answer.usage is not None
        written = len(call.function.name) + len(call.function.arguments)
        assert answer.usage.completion_tokens == math.ceil(written / 4)
        assert sim.stats.tool_calls == 1

    async def test_after_a_tool_result_the_model_answers(self) -> None:
        """Once a tool result is in the messages, the answer is text, not another call."""
        async with simulator(tool_call_rate=1.0) as (client, _):
            first = await client.chat.completions.create(
                model="gen", messages=ask("Card 1234567?"), tools=[LOOKUP]
            )
            call = (first.choices[0].message.tool_calls or [])[0]
            messages: list[Any] = [
                *ask("Card 1234567?"),
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": '{"status": "posted"}'},
            ]
            second = await client.chat.completions.create(
                model="gen", messages=messages, tools=[LOOKUP]
            )
        assert second.choices[0].finish_reason == "stop"
        assert second.choices[0].message.tool_calls is None
        assert second.choices[0].message.content

    async def test_tool_choice_steers_the_call(self) -> None:
        """``none`` never calls, a named function is the one called, ``required`` always calls."""
        async with simulator(tool_call_rate=0.0) as (client, _):
            tools: Any = [LOOKUP, REFUND]
            never = await client.chat.completions.create(
                model="gen", messages=ask("a"), tools=tools, tool_choice="none"
            )
            named = await client.chat.completions.create(
                model="gen",
                messages=ask("b"),
                tools=tools,
                tool_choice={"type": "function", "function": {"name": "refund"}},
            )
            required = await client.chat.completions.create(
                model="gen", messages=ask("c"), tools=tools, tool_choice="required"
            )
            plain = await client.chat.completions.create(
                model="gen", messages=ask("d"), tools=tools
            )
        assert never.choices[0].finish_reason == "stop"
        calls = named.choices[0].message.tool_calls or []
        assert [c.function.name for c in calls if c.type == "function"] == ["refund"]
        assert required.choices[0].finish_reason == "tool_calls"
        assert plain.choices[0].finish_reason == "stop"

    async def test_a_share_of_tool_requests_call(self) -> None:
        """At ``tool_call_rate`` 0.5 some answers call a tool and the others write text."""
        async with simulator(tool_call_rate=0.5) as (client, sim):
            answers = [
                await client.chat.completions.create(
                    model="gen", messages=ask(f"q {i}"), tools=[LOOKUP]
                )
                for i in range(30)
            ]
        calls = sum(a.choices[0].finish_reason == "tool_calls" for a in answers)
        assert 3 <= calls <= 27
        assert sim.stats.tool_calls == calls
        assert sim.stats.generated == 30 - calls

    async def test_a_streamed_tool_call(self) -> None:
        """Streamed, a tool call arrives as a ``tool_calls`` delta and ends with its reason."""
        async with simulator(tool_call_rate=1.0) as (client, _):
            stream = await client.chat.completions.create(
                model="gen", messages=ask("x"), tools=[LOOKUP], stream=True
            )
            chunks = [chunk async for chunk in stream]
        deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
        assert [d.function.name for d in deltas if d.function] == ["lookup_card"]
        assert chunks[-1].choices[0].finish_reason == "tool_calls"


class TestSettings:
    @pytest.mark.parametrize(
        ("settings", "problem"),
        [
            ({"mode": "chat"}, "mode: must be one of classify, generate"),
            ({"tool_call_rate": 1.5}, "tool_call_rate:"),
        ],
    )
    def test_bad_settings_are_refused(self, settings: dict[str, Any], problem: str) -> None:
        """An unknown mode or a rate outside 0..1 is a config error naming the field."""
        with pytest.raises(ConfigError) as raised:
            ModelSimulator(FixedLabel(), SimulatorSettings(**settings))
        assert any(p.startswith(problem) for p in raised.value.problems)


def _validates(validator: jsonschema.Draft202012Validator, content: str) -> bool:
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        return False
    return bool(validator.is_valid(value))
