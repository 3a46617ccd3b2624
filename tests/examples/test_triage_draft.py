"""Triage's draft step: the LLM draft through the ``draft_reply`` template when configured, the
local knowledge-base draft otherwise and while the LLM path is degraded."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sluice.demo import draft_lines
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.models.base import ModelRequest, ModelResult
from sluice.models.chat_model import ChatModel
from sluice.models.openai_client import ClientSettings, OpenAIClient
from sluice.models.prices import PriceTable
from sluice.outbound.policy import EgressPolicy
from sluice.prompts import load_prompts
from sluice.steps.files import AppFiles
from sluice.steps.generate import Generation
from sluice.testing import step_context

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "triage"
DATA = {
    "text": "my card has still not arrived after two weeks",
    "intent": "card_arrival",
    "confidence": 0.9,
    "neighbours": [
        {"id": "t1", "text": "card not here yet", "intent": "card_arrival",
         "resolution": "Cards arrive within 3-5 working days."},
    ],
}  # fmt: skip
LLM_OPTIONS = {"prompt": "draft_reply", "model": "llm"}


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


@pytest.fixture
def draft() -> Any:
    """The app's draft step function."""
    sys.path.insert(0, str(EXAMPLE / "workflows"))
    try:
        return importlib.import_module("triage_steps").draft
    finally:
        sys.path.remove(str(EXAMPLE / "workflows"))


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


def _services(llm: Any, **extra: Any) -> dict[str, Any]:
    return {
        "files": AppFiles(EXAMPLE),
        "generate": Generation(load_prompts(EXAMPLE)),
        "models": {"llm": llm},
        **extra,
    }


async def test_without_a_prompt_the_draft_is_local(draft: Any) -> None:
    """The embedded app's path: the knowledge-base reply, no model asked."""
    ctx = step_context(step="draft", services={"files": AppFiles(EXAMPLE)})
    result = await draft(ctx, DATA)
    assert result["draft"]["reply"].startswith("Cards usually arrive")
    assert result["draft"]["review"] is False
    assert "model" not in result["draft"]


async def test_with_an_llm_the_draft_is_generated(draft: Any, llm: ChatModel) -> None:
    """The template's output schema shapes the draft; its version and cost come with it."""
    ctx = step_context(step="draft", options=LLM_OPTIONS, services=_services(llm))
    result = await draft(ctx, DATA)
    drafted = result["draft"]
    template = load_prompts(EXAMPLE)["draft_reply"]
    assert template.output_schema is not None
    jsonschema.validate(
        {"reply": drafted["reply"], "needs_review": drafted["review"], "reason": drafted["reason"]},
        template.output_schema,
    )
    assert drafted["template"] == template.id
    assert drafted["model"] == "llm"
    assert drafted["cost"] > 0
    assert drafted["similar_tickets"] == ["t1"]


async def test_a_degraded_llm_path_falls_back_to_the_local_draft(
    draft: Any, llm: ChatModel
) -> None:
    """A degrade budget that holds no call, or a provider that cannot be reached: the local
    draft, marked with why."""
    ctx = step_context(step="draft", options=LLM_OPTIONS,
                       services=_services(llm, escalation=Refusing()))  # fmt: skip
    spent = await draft(ctx, DATA)
    assert spent["draft"]["degraded"] == "spend"
    assert spent["draft"]["reply"].startswith("Cards usually arrive")
    async with OpenAIClient(
        ClientSettings("http://127.0.0.1:9/v1", timeout_s=2), policy=EgressPolicy.loopback()
    ) as client:
        down = ChatModel(client, name="llm")
        ctx = step_context(step="draft", options=LLM_OPTIONS, services=_services(down))
        failed = await draft(ctx, DATA)
    assert failed["draft"]["degraded"] == "error"
    assert failed["draft"]["reply"].startswith("Cards usually arrive")


def test_the_demo_report_shows_drafts_needing_review_and_llm_cost() -> None:
    """The review share always; the LLM's share and cost per 1,000 tickets when it drafts."""
    local: list[dict[str, Any]] = [{"review": True}, {"review": False}]
    assert draft_lines(local) == ["drafts         0.500 need review"]
    mixed: list[dict[str, Any]] = [*local, {"review": False, "model": "llm", "cost": 0.0004},
             {"review": True, "degraded": "spend"}]  # fmt: skip
    assert draft_lines(mixed) == [
        "drafts         0.500 need review",
        "LLM drafts     0.250 written by the LLM (1 local fallbacks), 0.1000 per 1,000 tickets",
    ]
