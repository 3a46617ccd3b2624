"""The models section of sluice.yaml: every problem reported with its path; models built."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from sluice.errors import ConfigError
from sluice.models.base import Model, ModelRequest
from sluice.models.local import LocalClassifier
from sluice.models.registry import build_models, models_dir, validate_models


class TestValidate:
    def test_valid_section_has_no_problems(self) -> None:
        """The documented example validates cleanly."""
        spec = {
            "small": {"kind": "wordllama", "train": "data/train.csv", "price_per_call": 1e-5},
            "large": {
                "kind": "stacked",
                "train": "data/train.csv",
                "c": 0.5,
                "features": {"minilm": 3, "tfidf_char": 1},
                "calibration": "temperature",
                "cv_folds": 3,
            },
        }
        assert validate_models(spec) == []

    def test_every_problem_with_its_path(self) -> None:
        """Unknown kinds, keys, blocks and bad numbers are all reported at once."""
        spec = {
            "large": {"kind": "x"},
            "small": {
                "kind": "tfidf",
                "price_per_call": -1,
                "features": {"bert": 1, "minilm": 0},
                "calibration": "isotonic",
                "colour": "red",
            },
            "bare": {"train": "data/train.csv"},
            "odd": "tfidf",
        }
        problems = validate_models(spec)
        assert problems[0].startswith("models.large.kind: unknown kind 'x'")
        for expected in (
            "models.small.colour: unknown key",
            "models.small.train: required",
            "models.small.price_per_call: must be a non-negative number",
            "models.small.features.bert: unknown block",
            "models.small.features.minilm: weight must be a positive number",
            "models.small.calibration: must be 'temperature' or 'none'",
            "models.bare.kind: required",
            "models.odd: must be a mapping",
        ):
            assert any(p.startswith(expected) for p in problems), expected

    def test_not_a_mapping(self) -> None:
        """A models section that is a list is one clear problem."""
        assert validate_models(["small"]) == [
            "models: must be a mapping of model names to settings"
        ]


class TestBuild:
    async def test_builds_and_caches_local_models(self, app_dir: Path) -> None:
        """build_models trains into APP_DIR/.sluice/models and prices calls from config."""
        spec = {"fast": {"kind": "tfidf", "train": "data/train.csv", "price_per_call": 0.003}}
        models = build_models(spec, app_dir)
        model = models["fast"]
        assert isinstance(model, LocalClassifier)
        assert (models_dir(app_dir) / f"fast-{model.version}" / "meta.json").is_file()
        result = await model.predict(ModelRequest("how do I change my PIN?"))
        assert result.cost == 0.003
        assert result.label == "change_pin"

    def test_invalid_spec_raises_config_error(self, app_dir: Path) -> None:
        """Problems are raised together in one ConfigError."""
        with pytest.raises(ConfigError) as info:
            build_models({"m": {"kind": "tfidf"}}, app_dir)
        assert info.value.problems == [
            "models.m.train: required, a CSV path relative to the app directory"
        ]

    def test_other_kinds_plug_in(self, app_dir: Path, tfidf_model: LocalClassifier) -> None:
        """A builder for a non-local kind is used for it, and its validator is consulted."""

        def build(name: str, entry: Mapping[str, Any], root: Path) -> Model:
            assert (name, root) == ("remote", app_dir)
            return tfidf_model

        def check(path: str, entry: Mapping[str, Any]) -> list[str]:
            return [] if "url" in entry else [f"{path}.url: required"]

        models = build_models(
            {"remote": {"kind": "openai", "url": "http://x"}},
            app_dir,
            builders={"openai": build},
            validators={"openai": check},
        )
        assert models["remote"] is tfidf_model
        with pytest.raises(ConfigError, match=r"models\.remote\.url: required"):
            build_models(
                {"remote": {"kind": "openai"}},
                app_dir,
                builders={"openai": build},
                validators={"openai": check},
            )
