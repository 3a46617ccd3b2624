"""Load-time checks of classify steps: an unknown model, and a chat model with no labels, are
named with their file and path and what to add, by `sluice config check` and at load."""

from __future__ import annotations

import pytest

from sluice.app import SluiceApp
from sluice.cli.config_check import check_app
from sluice.config import load_settings
from sluice.errors import ConfigError
from tests.conftest import MakeApp

CONFIG = """
store: sqlite:///.sluice/c.db
pools: {p: {concurrency: 1}}
models:
  remote: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
  labelled: {kind: openai, base_url: "http://127.0.0.1:9/v1", labels: [a, b]}
"""
FLOW = """
name: w
input_schema: {type: object}
steps:
  - {name: c, pool: p, uses: classify, options: {cascade: [{model: TIER}]}}
"""


def test_a_chat_model_without_labels_is_a_load_time_error(make_app: MakeApp) -> None:
    app_dir = make_app(CONFIG, {"w.yaml": FLOW.replace("TIER", "remote")})
    problems = check_app(app_dir)["problems"]
    assert problems == [
        "workflows/w.yaml: steps[0].options.cascade[0].model: 'remote' is a chat model with no"
        " labels to choose from: add models.remote.labels (a list, or a CSV whose label or"
        " category column lists them, e.g. data/train.csv)"
    ]
    with pytest.raises(ConfigError, match=r"add models\.remote\.labels"):
        SluiceApp.from_settings(load_settings(app_dir))


def test_an_unknown_tier_names_the_known_models(make_app: MakeApp) -> None:
    app_dir = make_app(CONFIG, {"w.yaml": FLOW.replace("TIER", "remot")})
    problems = check_app(app_dir)["problems"]
    assert any(
        "steps[0].options.cascade[0].model: 'remot' is not a model of models:"
        " (known: labelled, remote)" in p
        for p in problems
    ), problems


def test_a_labelled_chat_model_passes(make_app: MakeApp) -> None:
    app_dir = make_app(CONFIG, {"w.yaml": FLOW.replace("TIER", "labelled")})
    assert check_app(app_dir)["problems"] == []
