"""Fixtures for releases: a copy of the triage example with small local models trained for
real (TF-IDF on four tickets per intent), and a store of each kind.

PostgreSQL is reached at ``SLUICE_TEST_POSTGRES``; a missing server fails the tests.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from sluice.models.registry import models_dir, training_params
from sluice.models.splits import read_examples, write_examples
from sluice.models.training import ensure_artifact
from tests.models.conftest import per_label
from tests.store.conftest import store

TRIAGE = Path(__file__).resolve().parents[2] / "examples" / "triage"
# Both models TF-IDF so that training takes seconds; the release does not care which kind.
_MODELS = """models:
  small: {kind: tfidf, train: data/train.csv, price_per_call: 0.000002}
  large: {kind: tfidf, train: data/train.csv, price_per_call: 0.0002, c: 1.0}

"""


@pytest.fixture(scope="session")
def trained_triage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The triage app (workflow, steps, prompts, routing, reply templates) with its models
    trained; tests copy it with :func:`copy_app` before changing anything."""
    root = tmp_path_factory.mktemp("triage") / "triage"
    shutil.copytree(TRIAGE, root, ignore=shutil.ignore_patterns(".sluice", "banking77", "*.pyc"))
    config = (root / "sluice.yaml").read_text()
    config = re.sub(r"^models:\n(?:(?:  .*)?\n)*", _MODELS, config, count=1, flags=re.M)
    (root / "sluice.yaml").write_text(config)
    subset = per_label(read_examples(TRIAGE / "data" / "train.csv"), 4)
    write_examples(root / "data" / "train.csv", subset)
    entries: dict[str, dict[str, Any]] = {
        "small": {"kind": "tfidf", "train": "data/train.csv"},
        "large": {"kind": "tfidf", "train": "data/train.csv", "c": 1.0},
    }
    for name, entry in entries.items():
        ensure_artifact(name, root / "data" / "train.csv", training_params(entry), models_dir(root))
    return root


@pytest.fixture
def app(trained_triage: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained triage app, free to change."""
    target = tmp_path / "app"
    shutil.copytree(trained_triage, target)
    return target


# The store of the store contract suite: each kind, PostgreSQL in a schema of its own.
__all__ = ["app", "store", "trained_triage"]
