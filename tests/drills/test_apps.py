"""The triage app variants load and validate, and share the source app's trained state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sluice.config import load_settings
from sluice.drills.apps import EXAMPLE_TRIAGE, llm_triage_app, naive_triage_app
from sluice.errors import ConfigError
from sluice.models.chat_model import ChatModelBuilder
from sluice.models.prices import validate_prices
from sluice.models.registry import validate_models
from sluice.prompts import load_prompts
from sluice.reliability.config import parse_reliability
from sluice.reliability.slo_guards import SloGuards
from sluice.workflow.loader import load_workflow_file
from sluice.workflow.model import Workflow

URL = "http://127.0.0.1:9/v1"
SLO = {"p95_ms": 300, "error_rate": 0.01, "window_s": 30, "policy": "degrade"}


def _validated(app: Path) -> tuple[Workflow, dict[str, Any]]:
    """The app's triage workflow and config sections, after every check serving runs."""
    settings = load_settings(app)
    workflow = load_workflow_file(app / "workflows" / "triage.yaml", settings.pools)
    extra = dict(settings.extra)
    builder = ChatModelBuilder()
    assert validate_models(extra["models"], validators={"openai": builder.validate}) == []
    assert validate_prices(extra["prices"]) == []
    parse_reliability(extra["reliability"])
    SloGuards([workflow])  # raises on an invalid slo: section
    return workflow, extra


def _cascade(workflow: Workflow) -> list[dict[str, object]]:
    step = next(s for s in workflow.steps if s.name == "classify")
    return list(step.options["cascade"])


def test_llm_app_is_the_triage_app_with_the_llm_as_last_tier(tmp_path: Path) -> None:
    app = llm_triage_app(tmp_path / "sluice", URL, llm_threshold=0.6, slo=SLO)
    workflow, extra = _validated(app)
    cascade = _cascade(workflow)
    assert [t["model"] for t in cascade] == ["small", "large", "llm"]
    assert cascade[1]["threshold"] == 0.6
    assert set(load_settings(app).pools) == {"retrieval", "inference", "post"}
    assert "caches" in extra
    assert extra["reliability"] == {"guard_tiers": True}
    assert workflow.extra["slo"] == SLO
    # Trained models and indexes are the source's, so a variant trains nothing.
    models = app / ".sluice" / "models"
    assert models.is_symlink()
    assert models.resolve() == (EXAMPLE_TRIAGE / ".sluice/models").resolve()
    assert (app / "data" / "train.csv").is_file()
    assert not (app / ".sluice" / "triage.db").exists()  # the store is the variant's own


def test_llm_app_can_keep_only_the_first_local_tier(tmp_path: Path) -> None:
    app = llm_triage_app(tmp_path / "drill", URL, local_tiers=1, llm_threshold=1.0, caches=False)
    workflow, extra = _validated(app)
    assert _cascade(workflow) == [{"model": "small", "threshold": 1.0}, {"model": "llm"}]
    assert "caches" not in extra


def test_naive_app_runs_every_step_in_one_pool_and_asks_only_the_llm(tmp_path: Path) -> None:
    app = naive_triage_app(tmp_path / "naive", URL, concurrency=8, retries=2)
    workflow, extra = _validated(app)
    assert list(load_settings(app).pools) == ["shared"]
    assert {s.pool for s in workflow.steps} == {"shared"}
    assert _cascade(workflow) == [{"model": "llm"}]
    assert next(s for s in workflow.steps if s.name == "classify").retries == 2
    assert "caches" not in extra
    assert "spend" not in extra
    assert extra["reliability"] == {"guard_tiers": False}
    assert list(extra["models"]) == ["llm"]
    assert "slo" not in workflow.extra


def test_variants_refuse_bad_settings_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http"):
        llm_triage_app(tmp_path / "a", "localhost:8900")
    with pytest.raises(ConfigError, match="llm_threshold"):
        llm_triage_app(tmp_path / "b", URL, llm_threshold=1.5)
    with pytest.raises(ConfigError, match="local_tiers"):
        llm_triage_app(tmp_path / "e", URL, local_tiers=3)
    with pytest.raises(ConfigError, match="concurrency"):
        naive_triage_app(tmp_path / "c", URL, concurrency=0)
    with pytest.raises(ConfigError, match="not a triage app"):
        naive_triage_app(tmp_path / "d", URL, source=tmp_path)


def test_llm_app_can_draft_replies_with_the_llm(tmp_path: Path) -> None:
    """``llm_draft``: the LLM joins the ``drafter`` group the draft step (a generate step on
    the draft_reply template, which the variant carries) asks; without it the group stays
    empty and the draft local."""
    app = llm_triage_app(tmp_path / "draft", URL, llm_draft=True)
    workflow, _ = _validated(app)
    draft = next(s for s in workflow.steps if s.name == "draft")
    assert draft.uses == "generate"
    assert draft.options["template"] == "draft_reply"
    assert draft.options["model"] == "drafter"
    assert draft.budget_ms >= 15_000
    assert load_settings(app).model_groups == {"drafter": ("llm",)}
    assert "draft_reply" in load_prompts(app)
    plain = llm_triage_app(tmp_path / "plain", URL)
    assert load_settings(plain).model_groups == {"drafter": ()}
