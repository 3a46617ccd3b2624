"""Model groups (``model_groups:``): a name standing for an ordered list of models, which
``generate`` steps and ``ctx.service("generate")`` accept as ``model``; checked when the app
loads and by ``sluice config check``."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluice.app import SluiceApp
from sluice.cli.main import build_app
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import ConfigError
from tests.conftest import MakeApp
from tests.steps.test_generate import (
    REPLY_TEMPLATE,
    TEXT_TEMPLATE,
    FixedLabel,
    _app,
    _ledger,
    _result,
    _run,
    _settings,
)

GROUPS = """
model_groups:
  drafter: [llm, backup]
  none: []
"""
DOWN = "llm: {kind: openai, base_url: 'http://127.0.0.1:9/v1', timeout_s: 2}"  # nothing on 9
SUMMARY = "{template: summary, model: %s, inputs: {ticket: text, intent: intent}}"


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """The generative simulator on loopback."""
    async with SimulatorServer(ModelSimulator(FixedLabel(), _settings())) as server:
        yield server


def _with_llm_down(app_dir: Path, base_url: str) -> None:
    config = app_dir / "sluice.yaml"
    config.write_text(config.read_text().replace(
        f"llm: {{kind: openai, base_url: {base_url}}}", DOWN))  # fmt: skip


def _checked(app_dir: Path) -> list[str]:
    """The problems ``sluice config check --json`` lists (it exits 1 with any)."""
    result = CliRunner().invoke(build_app(), ["config", "check", str(app_dir), "--json"])
    problems = [str(p) for p in json.loads(result.stdout)["problems"]]
    assert result.exit_code == (1 if problems else 0)
    return problems


async def test_a_group_falls_back_across_its_models(
    make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """``model: drafter`` asks the group's models in order: the first cannot be reached, the
    second answers; the step's provenance names it."""
    app_dir = _app(make_app, simulator.base_url, SUMMARY % "drafter",
                   {"summary": TEXT_TEMPLATE}, extra=GROUPS)  # fmt: skip
    _with_llm_down(app_dir, simulator.base_url)
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        (event,) = await _run(app, {"text": "card late", "intent": "card_arrival"})
        ledger = await _ledger(app)
    result = _result(event)
    assert result["draft"]["text"]
    assert result["generated"]["draft"]["model"] == "backup"
    assert set(ledger) == {"backup"}


async def test_the_service_takes_a_group(make_app: MakeApp, simulator: SimulatorServer) -> None:
    """``ctx.service("generate")(..., model="drafter")`` from a custom step; an empty group
    gives no call and ``degraded: no_model``."""
    custom = """
async def draft(ctx, data):
    gen = ctx.service("generate")
    outcome = await gen("reply", {"ticket": data["ticket"]}, model="drafter")
    empty = await gen("reply", {"ticket": data["ticket"]}, model="none")
    return {**data, "model": outcome.model, "empty": [empty.degraded, empty.calls]}
"""
    module = f"group_gen_{uuid.uuid4().hex[:8]}"  # a fresh module: step modules are cached
    app_dir = _app(make_app, simulator.base_url, "{}", {"reply": REPLY_TEMPLATE},
                   {f"{module}.py": custom}, extra=GROUPS)  # fmt: skip
    workflow = app_dir / "workflows" / "gen.yaml"
    workflow.write_text(workflow.read_text().replace("uses: generate", f'uses: "{module}:draft"'))
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        (event,) = await _run(app, {"ticket": "card late"})
        ledger = await _ledger(app)
    result = _result(event)
    assert result["model"] == "llm"
    assert result["empty"] == ["no_model", []]
    assert ledger["llm"][0] == 1


async def test_an_empty_group_takes_the_fallback(
    make_app: MakeApp, simulator: SimulatorServer
) -> None:
    """A step on an empty group asks no model: its fallback answers, in the schema's shape."""
    fallback = """
def local(ctx, data, values):
    return {"reply": "We will look into it: " + values["ticket"], "needs_review": True}
"""
    module = f"group_fallback_{uuid.uuid4().hex[:8]}"
    app_dir = _app(make_app, simulator.base_url,
                   f"{{template: reply, model: none, fallback: '{module}:local'}}",
                   {"reply": REPLY_TEMPLATE}, {f"{module}.py": fallback}, extra=GROUPS)  # fmt: skip
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        (event,) = await _run(app, {"ticket": "card late"})
        ledger = await _ledger(app)
    result = _result(event)
    assert result["draft"] == {"reply": "We will look into it: card late", "needs_review": True}
    assert result["generated"]["draft"]["fallback"] == f"{module}:local"
    assert ledger == {}


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ("model_groups: {drafter: [llm, gpt9]}",
         "sluice.yaml: model_groups.drafter[1]: 'gpt9' is not a model of the models: section"),
        ("model_groups: {drafter: [llm, llm]}",
         "sluice.yaml: model_groups.drafter[1]: 'llm' is listed twice"),
        ("model_groups: {llm: [backup]}",
         "sluice.yaml: model_groups.llm: a model of the models: section has this name already"),
        ("model_groups: {drafter: llm}",
         "sluice.yaml: model_groups.drafter: must be a list of model names, tried in order"),
    ],
)  # fmt: skip
def test_a_bad_group_fails_the_load_and_the_check(
    make_app: MakeApp, groups: str, expected: str
) -> None:
    """A group naming an unknown model (or otherwise unusable) fails the load with the file
    and path; ``sluice config check`` reports the same line."""
    app_dir = _app(make_app, "http://127.0.0.1:9/v1", SUMMARY % "llm",
                   {"summary": TEXT_TEMPLATE}, extra="\n" + groups)  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load_settings(app_dir)
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems
    problems = _checked(app_dir)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (SUMMARY % "drafters",
         "steps[0].options.model: 'drafters' is not a model of the models: section nor a group"),
        (SUMMARY % "[none, gpt9]", "steps[0].options.model[1]: 'gpt9' is not a model"),
        (SUMMARY % "none",
         "steps[0].options.model: 'none' names only empty model groups: set a fallback"),
    ],
)  # fmt: skip
def test_a_step_naming_an_unknown_group_fails_the_load_and_the_check(
    make_app: MakeApp, options: str, expected: str
) -> None:
    """A generate step whose ``model`` is neither a model nor a group fails the app load with
    the workflow file and the option's path, and ``sluice config check`` lists it."""
    app_dir = _app(make_app, "http://127.0.0.1:9/v1", options, {"summary": TEXT_TEMPLATE},
                   extra=GROUPS)  # fmt: skip
    with pytest.raises(ConfigError) as err:
        SluiceApp.from_settings(load_settings(app_dir))
    line = f"workflows/gen.yaml: {expected}"
    assert any(p.startswith(line) for p in err.value.problems), err.value.problems
    problems = _checked(app_dir)
    assert any(p.startswith(line) for p in problems), problems


def test_fallback_and_lookup_options_are_checked(make_app: MakeApp) -> None:
    """A fallback that cannot be imported and a lookup input whose file is missing or whose
    key is not given: each named by its path."""
    options = ("{template: summary, model: llm, fallback: 'nomodule_xyz:fn', inputs: {ticket:"
               " text, intent: {file: kb/missing.yaml}}}")  # fmt: skip
    app_dir = _app(make_app, "http://127.0.0.1:9/v1", options, {"summary": TEXT_TEMPLATE})
    with pytest.raises(ConfigError) as err:
        SluiceApp.from_settings(load_settings(app_dir))
    problems = err.value.problems
    prefix = "workflows/gen.yaml: steps[0].options"
    assert f"{prefix}.fallback: cannot import 'nomodule_xyz'" in "\n".join(problems)
    assert f"{prefix}.inputs.intent.key: required, the data path" in "\n".join(problems)
    assert f"{prefix}.inputs.intent.file: 'kb/missing.yaml' cannot be read" in "\n".join(problems)
