"""The labelled evaluation set and the masker's accuracy targets on it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sluice.guard import DEFAULT_TYPES, PiiMasker, PiiType
from sluice.guard.pii_corpus import (
    LabelledText,
    build_corpus,
    labelled_example,
    read_ticket_texts,
    score,
)

DATA = Path(__file__).resolve().parents[2] / "examples/triage/data/banking77/train.csv"

RECALL_TARGET = 0.99
PRECISION_TARGET = 0.95


@pytest.fixture(scope="module")
def corpus() -> list[LabelledText]:
    """The labelled set built from the BANKING77 training tickets, seed 77."""
    if not DATA.exists():
        pytest.skip(f"{DATA} is not present")
    return build_corpus(read_ticket_texts(DATA), seed=77)


class TestCorpus:
    """How the set is built."""

    def test_labels_point_at_injected_values(self) -> None:
        """Every label spans a value of its type inside the ticket text."""
        example = labelled_example(random.Random(1), "where is my card", 3, 2)
        assert "where" in example.text
        assert len(example.entities) == 3
        for entity in example.entities:
            value = example.text[entity.start : entity.end]
            assert value.strip() == value
            assert value

    def test_deterministic(self) -> None:
        """The same seed builds the same set; another seed another one."""
        tickets = ["where is my card", "I was charged twice", "top up failed"] * 20
        assert build_corpus(tickets, seed=3) == build_corpus(tickets, seed=3)
        assert build_corpus(tickets, seed=3) != build_corpus(tickets, seed=4)

    def test_every_type_is_well_represented(self, corpus: list[LabelledText]) -> None:
        """Each structured type has over a thousand labelled values."""
        counts = dict.fromkeys(DEFAULT_TYPES, 0)
        for example in corpus:
            for entity in example.entities:
                counts[entity.type] += 1
        assert min(counts.values()) > 1000


class TestScore:
    """Precision and recall by exact span and type."""

    def test_counts(self) -> None:
        """A wrong span is one false positive and one false negative."""
        example = labelled_example(random.Random(2), "hello there", 1, 0)
        (gold,) = example.entities
        shifted = type(gold)(gold.type, gold.start + 1, gold.end)
        result = score(lambda _text: [shifted], [example])[gold.type]
        assert (result.true_positives, result.false_positives, result.false_negatives) == (0, 1, 1)
        assert result.precision == result.recall == 0.0

    def test_empty_is_perfect(self) -> None:
        """Nothing to find and nothing found scores 1.0, not a division by zero."""
        assert score(lambda _text: [], [LabelledText("plain text")]) == {}


def test_targets_on_labelled_set(corpus: list[LabelledText]) -> None:
    """Recall >= 0.99 and precision >= 0.95 on every structured type."""
    scores = score(PiiMasker().detect, corpus)
    assert set(scores) == set(DEFAULT_TYPES)
    misses = {
        t.value: (round(s.precision, 4), round(s.recall, 4))
        for t, s in scores.items()
        if s.recall < RECALL_TARGET or s.precision < PRECISION_TARGET
    }
    assert misses == {}
    assert PiiType.PERSON not in scores
