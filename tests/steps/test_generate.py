"""The ``generate`` step through a real app: templates from its ``prompts/`` folder, an
OpenAI-kind model served by the model simulator (generative mode) on a real socket, the cost
ledger in the store."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import ConfigError
from sluice.models.base import ModelRequest, ModelResult
from sluice.store.base import EventState
from tests.conftest import MakeApp

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["reply", "needs_review"],
    "properties": {
        "reply": {"type": "string", "minLength": 5, "maxLength": 300},
        "needs_review": {"type": "boolean"},
    },
}
TEXT_TEMPLATE = """
model: llm
params: {temperature: 0, max_tokens: 60}
variables:
  ticket: {type: string, max_chars: 500}
  intent: {type: string}
system: You summarize bank support tickets.
user: "Ticket ({{ intent }}): {{ ticket }}"
"""
REPLY_TEMPLATE = f"""
model: llm
params: {{temperature: 0, max_tokens: 80}}
variables:
  ticket: {{type: string}}
system: You draft replies for a bank.
user: "Draft a reply to: {{{{ ticket }}}}"
output_schema: {orjson.dumps(SCHEMA).decode()}
"""


class FixedLabel:
    """The simulator's classifier (generation requests never reach it)."""

    name = "fixed"
    version = "1"

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Always ``card_arrival``."""
        return ModelResult(model=self.name, output={}, label="card_arrival", confidence=0.9)


class BreaksFirst(ModelSimulator):
    """The generative simulator, whose first ``broken`` structured answers miss the schema."""

    broken = 1

    def _generate(self, body: Any, model: str) -> dict[str, Any]:
        rate = 1.0 if self.broken > 0 else 0.0
        self.broken -= 1
        self.settings = replace(self.settings, invalid_rate=rate)
        return super()._generate(body, model)


class AlwaysTools(ModelSimulator):
    """A model that asks for a tool on every turn, even after a tool answered."""

    def _calls_tool(self, messages: list[Any], body: Any) -> bool:
        return True


def _settings(**extra: Any) -> SimulatorSettings:
    return SimulatorSettings(mode="generate", seed=7, **extra)


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """The generative simulator on loopback."""
    async with SimulatorServer(ModelSimulator(FixedLabel(), _settings())) as server:
        yield server


def _config(base_url: str, extra: str = "") -> str:
    return f"""
        store: sqlite:///.sluice/gen.db
        outbound: {{allow_private: ["127.0.0.1/32"]}}  # local servers: allowed explicitly
        pools:
          inference: {{concurrency: 8}}
        telemetry: {{flush_ms: 50}}
        models:
          llm: {{kind: openai, base_url: {base_url}}}
          backup: {{kind: openai, base_url: {base_url}}}
        prices:
          llm: {{input_per_1k: 0.001, output_per_1k: 0.002}}
          backup: {{input_per_1k: 0.0005, output_per_1k: 0.001}}
    """ + textwrap.indent(textwrap.dedent(extra), " " * 8)


def _workflow(options: str, *, retries: int = 0) -> str:
    return f"""
name: gen
version: 1
steps:
  - name: draft
    pool: inference
    uses: generate
    retries: {retries}
    options: {options}
"""


def _app(
    make_app: MakeApp,
    base_url: str,
    options: str,
    templates: dict[str, str],
    modules: dict[str, str] | None = None,
    extra: str = "",
) -> Path:
    app_dir = make_app(_config(base_url, extra), {"gen.yaml": _workflow(options)}, modules)
    (app_dir / "prompts").mkdir(exist_ok=True)
    for name, text in templates.items():
        (app_dir / "prompts" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return app_dir


async def _run(app: SluiceApp, *bodies: dict[str, Any]) -> list[Any]:
    ids = [await app.runtime.submit("gen", body) for body in bodies]
    return [await app.runtime.wait(i, timeout=60) for i in ids]


def _result(event: Any) -> dict[str, Any]:
    assert event.state is EventState.DONE, event.error
    value: dict[str, Any] = orjson.loads(event.result)
    return value


async def _ledger(app: SluiceApp) -> dict[str, tuple[int, int, float]]:
    await app.telemetry.flush()
    totals = await app.store.cost_totals("model", 0.0)
    return {t.key: (t.calls, t.cached, t.cost) for t in totals}


def _spans(app_dir: Path, prefix: str) -> list[dict[str, Any]]:
    with sqlite3.connect(app_dir / ".sluice" / "gen.db") as db:
        rows = db.execute("SELECT attributes FROM spans WHERE name LIKE ?", (prefix + "%",))
        return [orjson.loads(row[0]) for row in rows]


async def test_text_from_a_template_with_inputs(
    make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """Variables come from data paths; the answer is text; the call is in the ledger and its
    span names the template and its version."""
    app_dir = _app(
        make_app, simulator.base_url,
        "{template: summary, inputs: {ticket: text, intent: classify.label}}",
        {"summary": TEXT_TEMPLATE},
    )  # fmt: skip
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        ai = app.services.ai
        assert ai is not None
        assert ai.prompts is not None
        version = ai.prompts["summary"].version
        (event,) = await _run(app, {"text": "my card is late", "classify": {"label": "card"}})
        ledger = await _ledger(app)
    draft = _result(event)["draft"]
    assert set(draft) == {"text"}
    assert len(draft["text"].split()) > 5
    calls, cached, cost = ledger["llm"]
    assert calls == 1
    assert cached == 0
    assert cost > 0
    spans = _spans(app_dir, "chat llm")
    assert [s.get("sluice.prompt.template") for s in spans] == [f"summary@{version}"]
    with sqlite3.connect(app_dir / ".sluice" / "gen.db") as db:
        rows = db.execute("SELECT model, template FROM costs").fetchall()
    assert rows == [("llm", f"summary@{version}")]


async def test_rendering_errors_fail_the_step_naming_the_variable(
    make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """A missing field and a mistyped value: dead-lettered, the variable named, no model call."""
    app_dir = _app(
        make_app, simulator.base_url,
        "{template: summary, inputs: {ticket: text, intent: intent}}",
        {"summary": TEXT_TEMPLATE},
    )  # fmt: skip
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        missing, mistyped = await _run(app, {"text": "hello"}, {"text": "hello", "intent": 42})
        ledger = await _ledger(app)
    assert missing.state is EventState.DEAD
    assert mistyped.state is EventState.DEAD
    assert "intent: data.intent is missing" in missing.error
    assert "intent" in mistyped.error
    assert "string" in mistyped.error
    assert "42" not in mistyped.error  # problems never quote the value
    assert ledger == {}


async def test_structured_output_validates(make_app: MakeApp, simulator: SimulatorServer) -> None:
    """With an output schema the result is the object, valid against it."""
    app_dir = _app(make_app, simulator.base_url, "{template: reply}", {"reply": REPLY_TEMPLATE})
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        events = await _run(app, *({"ticket": f"where is card {i}?"} for i in range(3)))
    for event in events:
        jsonschema.validate(_result(event)["draft"], SCHEMA)


async def test_an_invalid_answer_is_repaired_once(make_app: MakeApp) -> None:
    """The first answer misses the schema: the model is asked again with the problems, and the
    second answer is the result; both calls are in the ledger."""
    sim = BreaksFirst(FixedLabel(), _settings())
    async with SimulatorServer(sim) as server:
        app_dir = _app(make_app, server.base_url, "{template: reply}", {"reply": REPLY_TEMPLATE})
        async with SluiceApp.from_settings(load_settings(app_dir)) as app:
            (event,) = await _run(app, {"ticket": "my card has not arrived"})
            ledger = await _ledger(app)
    jsonschema.validate(_result(event)["draft"], SCHEMA)
    assert ledger["llm"][0] == 2
    assert sim.stats.invalid == 1


async def test_still_invalid_after_the_repair_is_dead_lettered(make_app: MakeApp) -> None:
    """Every answer misses the schema: after one repair the step fails, not retried, with the
    schema problems; the worker lives on and the event can be replayed."""
    sim = ModelSimulator(FixedLabel(), _settings(invalid_rate=1.0))
    async with SimulatorServer(sim) as server:
        app_dir = _app(make_app, server.base_url, "{template: reply}", {"reply": REPLY_TEMPLATE})
        (app_dir / "workflows" / "gen.yaml").write_text(_workflow("{template: reply}", retries=3))
        async with SluiceApp.from_settings(load_settings(app_dir)) as app:
            (event,) = await _run(app, {"ticket": "my card has not arrived"})
            ledger = await _ledger(app)
            (after,) = await _run(app, {"ticket": "still here"})  # the worker still runs
    assert event.state is EventState.DEAD
    assert "does not match the output schema of reply@" in event.error
    assert "after 1 repair(s)" in event.error
    assert ledger["llm"][0] == 2  # the call and its repair; the dead step is not retried
    assert after.state is EventState.DEAD


TOOLS = """
from sluice.steps.tools import tool

CALLS = []


@tool({"type": "object", "required": ["card_id"],
       "properties": {"card_id": {"type": "string"}, "days": {"type": "integer"}}},
      description="Where a card is in delivery.")
async def card_status(ctx, arguments):
    CALLS.append(dict(arguments))
    return {"status": "shipped"}
"""


async def test_tool_calls_run_and_the_model_answers(make_app: MakeApp) -> None:
    """The model asks for a tool: its arguments are checked, the function runs, its result goes
    back, and the model's next answer is the result; the call is traced."""
    module = f"tools_{uuid.uuid4().hex[:8]}"
    sim = ModelSimulator(FixedLabel(), _settings(tool_call_rate=1.0))
    async with SimulatorServer(sim) as server:
        app_dir = _app(
            make_app, server.base_url,
            f"{{template: summary, inputs: {{ticket: text, intent: intent}},"
            f" tools: ['{module}:card_status']}}",
            {"summary": TEXT_TEMPLATE}, {f"{module}.py": TOOLS},
        )  # fmt: skip
        async with SluiceApp.from_settings(load_settings(app_dir)) as app:
            (event,) = await _run(app, {"text": "card 123456 late", "intent": "card_arrival"})
            ledger = await _ledger(app)
    assert _result(event)["draft"]["text"]
    calls: list[dict[str, Any]] = sys.modules[module].CALLS
    assert len(calls) == 1
    assert isinstance(calls[0]["card_id"], str)
    assert ledger["llm"][0] == 2
    assert sim.stats.tool_calls == 1
    (traced,) = _spans(app_dir, "tool card_status")
    assert traced["sluice.tool.round"] == 1


async def test_tool_rounds_are_bounded(make_app: MakeApp) -> None:
    """A model that keeps asking for tools fails the step after max_tool_rounds rounds."""
    module = f"tools_{uuid.uuid4().hex[:8]}"
    sim = AlwaysTools(FixedLabel(), _settings(tool_call_rate=1.0))
    async with SimulatorServer(sim) as server:
        app_dir = _app(
            make_app, server.base_url,
            f"{{template: summary, inputs: {{ticket: text, intent: intent}},"
            f" tools: ['{module}:card_status'], max_tool_rounds: 2}}",
            {"summary": TEXT_TEMPLATE}, {f"{module}.py": TOOLS},
        )  # fmt: skip
        async with SluiceApp.from_settings(load_settings(app_dir)) as app:
            (event,) = await _run(app, {"text": "card late", "intent": "card_arrival"})
            ledger = await _ledger(app)
    assert event.state is EventState.DEAD
    assert "after 2 rounds (max_tool_rounds)" in event.error
    assert ledger["llm"][0] == 3
    assert len(sys.modules[module].CALLS) == 2


async def test_cache_is_keyed_on_the_template_version(
    make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """At temperature 0 a repeat is a hit (in the ledger at zero cost); a changed template is
    a new version, hence a miss; at temperature > 0 nothing is cached unless asked."""
    options = "{template: summary, inputs: {ticket: text, intent: intent}}"
    app_dir = _app(make_app, simulator.base_url, options, {"summary": TEXT_TEMPLATE})
    body = {"text": "my card is late", "intent": "card_arrival"}
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        (first,) = await _run(app, body)  # one after the other: the second finds the first
        (second,) = await _run(app, body)
        ledger = await _ledger(app)
    assert _result(first)["draft"] == _result(second)["draft"]
    calls, cached, cost = ledger["llm"]
    assert (calls, cached) == (2, 1)  # the repeat is a ledger row, marked cached
    assert cost > 0

    # Through the service, on one response cache: a changed template (a new version) misses.
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        generation = app.services["generate"]
        cache = app.services["response_cache"]
        assert cache is not None
        changed = TEXT_TEMPLATE.replace("You summarize", "You briefly summarize")
        (app_dir / "prompts" / "summary.yaml").write_text(textwrap.dedent(changed))
        from sluice.prompts import load_prompts
        from sluice.steps.generate import Generation
        from sluice.testing import step_context

        services = dict(app.services)
        ctx = step_context(step="draft", services=services)
        values = {"ticket": "my card is late", "intent": "card_arrival"}
        before = await generation.for_step(ctx)("summary", values)
        again = await generation.for_step(ctx)("summary", values)
        services["generate"] = Generation(load_prompts(app_dir))
        ctx = step_context(step="draft", services=services)
        after = await services["generate"].for_step(ctx)("summary", values)
        hot = await services["generate"].for_step(ctx)(
            "summary", values, params={"temperature": 0.7}
        )
        hot_again = await services["generate"].for_step(ctx)(
            "summary", values, params={"temperature": 0.7}
        )
        opted = await services["generate"].for_step(ctx)(
            "summary", values, params={"temperature": 0.7}, cache=True
        )
        opted_again = await services["generate"].for_step(ctx)(
            "summary", values, params={"temperature": 0.7}, cache=True
        )
    assert not before.calls[0].cached
    assert again.calls[0].cached
    assert after.template != before.template
    assert not after.calls[0].cached
    assert not hot.calls[0].cached
    assert not hot_again.calls[0].cached
    assert not opted.calls[0].cached
    assert opted_again.calls[0].cached
    assert opted_again.cost == 0


async def test_listed_models_are_fallbacks(make_app: MakeApp, simulator: SimulatorServer) -> None:
    """A model that cannot be reached passes the call to the next one listed."""
    app_dir = _app(
        make_app, simulator.base_url,
        "{template: summary, model: [llm, backup], inputs: {ticket: text, intent: intent}}",
        {"summary": TEXT_TEMPLATE},
    )  # fmt: skip
    text = (
        (app_dir / "sluice.yaml")
        .read_text()
        .replace(  # nothing listens on port 9
            f"llm: {{kind: openai, base_url: {simulator.base_url}}}",
            "llm: {kind: openai, base_url: 'http://127.0.0.1:9/v1', timeout_s: 2}",
        )
    )
    (app_dir / "sluice.yaml").write_text(text)
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        (event,) = await _run(app, {"text": "card late", "intent": "card_arrival"})
        ledger = await _ledger(app)
    assert _result(event)["draft"]["text"]
    assert set(ledger) == {"backup"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("{template: nope}", "steps[0].options.template: unknown template 'nope'"),
        ("{template: summary, model: gpt9}",
         "steps[0].options.model: 'gpt9' is not a model of the models: section"),
        ("{template: summary, model: [llm, gpt9]}", "steps[0].options.model[1]: 'gpt9'"),
        ("{template: summary, inputs: {ticket: text, intent: i, extra: x}}",
         "steps[0].options.inputs.extra: template 'summary' declares no variable 'extra'"),
        ("{template: summary, inputs: {ticket: text}}",
         "steps[0].options.inputs: required variable 'intent'"),
        ("{template: summary, tools: ['nomodule_xyz:fn']}",
         "steps[0].options.tools[0].(tool): cannot import 'nomodule_xyz'"),
        ("{template: summary, tools: ['json:dumps']}",
         "steps[0].options.tools[0].(tool): 'json:dumps' declares no JSON Schema"),
    ],
)  # fmt: skip
def test_bad_options_fail_the_app_load_with_file_and_path(
    make_app: MakeApp, options: str, expected: str
) -> None:
    """Load-time checks name the workflow file and the option's path."""
    app_dir = _app(make_app, "http://127.0.0.1:9/v1", options, {"summary": TEXT_TEMPLATE})
    with pytest.raises(ConfigError) as err:
        SluiceApp.from_settings(load_settings(app_dir))
    assert any(
        p == f"workflows/gen.yaml: {expected}" or p.startswith(f"workflows/gen.yaml: {expected}")
        for p in err.value.problems
    ), err.value.problems


def test_a_broken_template_fails_the_app_load(make_app: MakeApp) -> None:
    """Template problems fail the load with the template's file and path."""
    broken = TEXT_TEMPLATE.replace("{{ intent }}", "{{ intnet }}")
    app_dir = _app(make_app, "http://127.0.0.1:9/v1", "{template: summary}", {"summary": broken})
    with pytest.raises(ConfigError) as err:
        SluiceApp.from_settings(load_settings(app_dir))
    assert any(p.startswith("prompts/summary.yaml: ") and "intnet" in p
               for p in err.value.problems), err.value.problems  # fmt: skip


def test_prompts_are_a_service_only_with_the_folder(make_app: MakeApp) -> None:
    """An app without prompts/ has no prompts or generate service."""
    app_dir = make_app(_config("http://127.0.0.1:9/v1"), {"gen.yaml": _workflow("{}").replace(
        "uses: generate", "uses: noop")})  # fmt: skip
    app = SluiceApp.from_settings(load_settings(app_dir))
    assert "prompts" not in app.services
    assert "generate" not in app.services
    (app_dir / "prompts").mkdir()
    (app_dir / "prompts" / "summary.yaml").write_text(textwrap.dedent(TEXT_TEMPLATE))
    app = SluiceApp.from_settings(load_settings(app_dir))
    assert list(app.services["prompts"]) == ["summary"]


async def test_a_custom_step_generates_through_the_service(
    make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """ctx.service("generate") renders and calls like the built-in step, ledger included."""
    custom = """
async def draft(ctx, data):
    outcome = await ctx.service("generate")("reply", {"ticket": data["ticket"]})
    return {**data, "reply": outcome.value["reply"], "template": outcome.template,
            "cost": outcome.cost}
"""
    module = f"custom_gen_{uuid.uuid4().hex[:8]}"  # a fresh module: step modules are cached
    app_dir = _app(make_app, simulator.base_url, "{}", {"reply": REPLY_TEMPLATE},
                   {f"{module}.py": custom})  # fmt: skip
    (app_dir / "workflows" / "gen.yaml").write_text(
        _workflow("{}").replace("uses: generate", f'uses: "{module}:draft"')
    )
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        (event,) = await _run(app, {"ticket": "card late"})
        ledger = await _ledger(app)
    result = _result(event)
    assert result["template"].startswith("reply@")
    assert result["reply"]
    assert ledger["llm"][0] == 1
    assert result["cost"] == pytest.approx(ledger["llm"][2])
