"""Shared fixtures for the local-model tests: small real subsets of BANKING77, trained once.

Models train on 12 examples per intent (924 rows) and are scored on 4 held-out examples per
intent from the validation split, so the whole directory stays fast on two cores while every
model, feature and calibration path runs for real.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sluice.models.local import LocalClassifier
from sluice.models.registry import build_local
from sluice.models.splits import Example, read_examples, write_examples

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[2] / "examples" / "triage" / "data"


def per_label(examples: Sequence[Example], count: int) -> list[Example]:
    """The first ``count`` examples of every label, in source order."""
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for example in examples:
        if seen[example.label] < count:
            seen[example.label] += 1
            kept.append(example)
    return kept


@pytest.fixture(scope="session")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app directory whose ``data/train.csv`` is a 12-per-intent subset of the train split."""
    root = tmp_path_factory.mktemp("triage")
    write_examples(root / "data" / "train.csv", per_label(read_examples(DATA / "train.csv"), 12))
    return root


@pytest.fixture(scope="session")
def held_out() -> list[Example]:
    """Four validation examples per intent (308 rows), never used for training."""
    return per_label(read_examples(DATA / "validation.csv"), 4)


@pytest.fixture(scope="session")
def tfidf_model(app_dir: Path) -> LocalClassifier:
    """A TF-IDF classifier trained on the subset."""
    entry = {"kind": "tfidf", "train": "data/train.csv", "price_per_call": 0.00001}
    model = build_local("small", entry, app_dir)
    assert isinstance(model, LocalClassifier)
    return model


@pytest.fixture(scope="session")
def held_out_scores(stacked_model: LocalClassifier, held_out: list[Example]) -> Any:
    """The stacked model's raw scores on the held-out examples (encoded once per session)."""
    return stacked_model.scores([e.text for e in held_out])


@pytest.fixture(scope="session")
def stacked_model(app_dir: Path) -> LocalClassifier:
    """The stacked MiniLM + wordllama + TF-IDF classifier trained on the subset."""
    entry = {"kind": "stacked", "train": "data/train.csv", "price_per_call": 0.0002}
    model = build_local("large", entry, app_dir)
    assert isinstance(model, LocalClassifier)
    return model
