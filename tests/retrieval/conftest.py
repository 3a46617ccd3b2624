"""Shared fixtures: real embedders and small real subsets of BANKING77.

Indexes hold 8 resolved tickets per intent (616 rows) from the train split; queries come from
the validation split, so neighbours are found for texts the index has never seen.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sluice.models.splits import Example, read_examples
from sluice.retrieval import (
    FeatureEmbedder,
    IndexItem,
    load_templates,
    minilm_embedder,
    resolved_tickets,
    wordllama_embedder,
)
from tests.models.conftest import per_label

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TRIAGE = Path(__file__).resolve().parents[2] / "examples" / "triage"
DATA = TRIAGE / "data"
TEMPLATES = TRIAGE / "kb" / "templates.yaml"


@pytest.fixture(scope="session")
def wordllama() -> FeatureEmbedder:
    """The fast static embedder (loads in well under a second)."""
    return wordllama_embedder()


@pytest.fixture(scope="session")
def minilm() -> FeatureEmbedder:
    """The MiniLM embedder; its weights load on first use (a few seconds, once per session)."""
    return minilm_embedder()


@pytest.fixture(scope="session")
def templates() -> dict[str, str]:
    """The triage app's knowledge-base templates."""
    return load_templates(TEMPLATES)


@pytest.fixture(scope="session")
def tickets(templates: dict[str, str]) -> list[IndexItem]:
    """8 resolved tickets per intent from the train split."""
    return resolved_tickets(per_label(read_examples(DATA / "train.csv"), 8), templates)


@pytest.fixture(scope="session")
def queries() -> list[Example]:
    """1 validation example per intent (77 texts the index has not seen)."""
    return per_label(read_examples(DATA / "validation.csv"), 1)
