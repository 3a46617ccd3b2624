"""Triage's draft step, a declared ``generate`` step: the ``drafter`` model group writes the
reply through the ``draft_reply`` template (the knowledge-base reply looked up in an app file,
the retrieved tickets as examples); with no model in the group, or while the LLM path is
degraded, the app's fallback drafts from the knowledge base in the same shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sluice.demo import draft_lines
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.models.base import ModelRequest, ModelResult
from sluice.models.chat_model import ChatModel
from sluice.models.openai_client import ClientSettings, OpenAIClient
from sluice.models.prices import PriceTable
from sluice.outbound.policy import EgressPolicy
from sluice.prompts import load_prompts
from sluice.reliability.slo_guards import SloGuards
from sluice.steps.files import AppFiles
from sluice.steps.generate import Generation, generate
from sluice.testing import step_context
from sluice.workflow.loader import load_workflow_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "triage"
NEIGHBOUR = {"id": "t1", "text": "card not here yet", "intent": "card_arrival",
             "resolution": "Cards arrive within 3-5 working days.", "score": 0.9}  # fmt: skip
DATA = {
    "text": "my card has still not arrived after two weeks",
    "intent": "card_arrival",
    "confidence": 0.9,
    "neighbours": [NEIGHBOUR],
}
SCHEMA: Mapping[str, Any] = load_prompts(EXAMPLE)["draft_reply"].output_schema or {}


SLOW_FLOW = """
name: slow
slo: {p95_ms: 300, error_rate: 0.01, window_s: 30, policy: degrade}
steps:
  - {name: draft, pool: post, uses: generate, options: {template: draft_reply}}
"""


class FixedLabel:
    """The simulator's classifier (generation requests never reach it)."""

    name = "fixed"
    version = "1"

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Always ``card_arrival``."""
        return ModelResult(model=self.name, output={}, label="card_arrival", confidence=0.9)


class Refusing:
    """A spend gate whose degrade budget holds nothing."""

    async def reserve(self, *args: Any) -> str:
        """Every call: ``spend``."""
        return "spend"


def _options() -> Mapping[str, Any]:
    """The draft step's options as the app's workflow file declares them."""
    flow = yaml.safe_load((EXAMPLE / "workflows" / "triage.yaml").read_text())
    step = next(s for s in flow["steps"] if s["name"] == "draft")
    assert step["uses"] == "generate"
    options: Mapping[str, Any] = step["options"]
    return options


@pytest.fixture
async def llm() -> AsyncIterator[ChatModel]:
    """A chat model on the generative simulator, priced."""
    settings = SimulatorSettings(mode="generate", seed=7)
    async with SimulatorServer(ModelSimulator(FixedLabel(), settings)) as server:
        prices = PriceTable.from_config({"llm": {"input_per_1k": 0.001, "output_per_1k": 0.002}})
        async with OpenAIClient(
            ClientSettings(server.base_url), prices=prices, policy=EgressPolicy.loopback()
        ) as client:
            yield ChatModel(client, name="llm")


def _services(drafters: tuple[str, ...], llm: Any = None, **extra: Any) -> dict[str, Any]:
    generation = Generation(load_prompts(EXAMPLE), EXAMPLE / "workflows", {"drafter": drafters})
    return {"files": AppFiles(EXAMPLE), "generate": generation,
            "models": {} if llm is None else {"llm": llm}, **extra}  # fmt: skip


async def _draft(services: dict[str, Any], data: Mapping[str, Any] = DATA) -> dict[str, Any]:
    ctx = step_context(step="draft", options=_options(), services=services)
    return await generate(ctx, dict(data))


async def test_with_an_empty_group_the_draft_is_local() -> None:
    """The embedded app's path: no model asked, the knowledge-base reply in the template's
    output shape, marked as the fallback's."""
    result = await _draft(_services(()))
    jsonschema.validate(result["draft"], SCHEMA)
    assert result["draft"]["reply"].startswith("Cards usually arrive")
    assert result["draft"]["needs_review"] is False
    made = result["generated"]["draft"]
    assert made["model"] is None
    assert made["calls"] == 0
    assert made["degraded"] == "no_model"
    assert made["fallback"] == "triage_steps:local_draft"


async def test_an_intent_without_a_kb_reply_takes_the_default_and_needs_review() -> None:
    """The lookup finds no entry for the intent: the declared default, sent for review with
    the reasons."""
    data = {**DATA, "intent": "no_such_intent", "confidence": 0.3}
    result = await _draft(_services(()), data)
    draft = result["draft"]
    assert draft["reply"].startswith("Thanks for getting in touch")
    assert draft["needs_review"] is True
    assert "no knowledge-base reply" in draft["reason"]
    assert "uncertain" in draft["reason"]


async def test_with_an_llm_in_the_group_the_draft_is_generated(llm: ChatModel) -> None:
    """The template's output schema shapes the draft; its template, model and cost are in
    ``generated.draft``."""
    result = await _draft(_services(("llm",), llm))
    jsonschema.validate(result["draft"], SCHEMA)
    made = result["generated"]["draft"]
    assert made["template"] == load_prompts(EXAMPLE)["draft_reply"].id
    assert made["model"] == "llm"
    assert made["cost"] > 0
    assert "fallback" not in made


async def test_a_degraded_llm_path_falls_back_to_the_local_draft(llm: ChatModel) -> None:
    """A degrade budget that holds no call, or a provider that cannot be reached: the local
    draft, marked with why."""
    spent = await _draft(_services(("llm",), llm, escalation=Refusing()))
    assert spent["generated"]["draft"]["degraded"] == "spend"
    assert spent["draft"]["reply"].startswith("Cards usually arrive")
    async with OpenAIClient(
        ClientSettings("http://127.0.0.1:9/v1", timeout_s=2), policy=EgressPolicy.loopback()
    ) as client:
        down = ChatModel(client, name="llm")
        failed = await _draft(_services(("llm",), down))
    assert failed["generated"]["draft"]["degraded"] == "error"
    assert failed["draft"]["reply"].startswith("Cards usually arrive")
    assert "degraded" not in failed  # the draft's fallback is not the classifier's degrade


async def test_while_the_slo_guard_degrades_the_fallback_drafts(
    llm: ChatModel, tmp_path: Path
) -> None:
    """The workflow's SLO slipped under a ``degrade`` policy: the step takes its declared
    cheap path (the fallback) without asking the model, as a cascade keeps its cheap tier."""
    flow = tmp_path / "slow.yaml"
    flow.write_text(SLOW_FLOW)
    guards = SloGuards([load_workflow_file(flow, ["post"])])
    for _ in range(20):  # min_events, each far past the p95 target
        guards.record("slow", 5000.0, True)
    assert guards.degraded("slow")
    ctx = step_context(step="draft", options=_options(), workflow="slow",
                       services={**_services(("llm",), llm), "slo_guards": guards})  # fmt: skip
    result = await generate(ctx, dict(DATA))
    jsonschema.validate(result["draft"], SCHEMA)
    made = result["generated"]["draft"]
    assert made["degraded"] == "slo"
    assert made["calls"] == 0
    assert made["fallback"] == "triage_steps:local_draft"
    normal = await _draft(_services(("llm",), llm, slo_guards=SloGuards([])))
    assert normal["generated"]["draft"]["model"] == "llm"
    ctx = step_context(step="draft", options=_options(), workflow="slow",
                       services={**_services(()), "slo_guards": guards})  # fmt: skip
    unconfigured = await generate(ctx, dict(DATA))
    assert unconfigured["generated"]["draft"]["degraded"] == "no_model"  # no model to shed


def test_the_demo_report_shows_drafts_needing_review_and_llm_cost() -> None:
    """The review share always; the LLM's share and cost per 1,000 tickets when it drafts."""
    local: list[dict[str, Any]] = [
        {"draft": {"needs_review": True}, "generated": {"draft": {"model": None}}},
        {"draft": {"needs_review": False}, "generated": {"draft": {"model": None}}},
    ]
    assert draft_lines(local) == ["drafts         0.500 need review"]
    mixed = [
        *local,
        {"draft": {"needs_review": False}, "generated": {"draft": {"model": "llm", "cost": 4e-4}}},
        {"draft": {"needs_review": True},
         "generated": {"draft": {"model": None, "degraded": "spend", "fallback": "f:g"}}},
    ]  # fmt: skip
    assert draft_lines(mixed) == [
        "drafts         0.500 need review",
        "LLM drafts     0.250 written by the LLM (1 local fallbacks), 0.1000 per 1,000 tickets",
    ]
