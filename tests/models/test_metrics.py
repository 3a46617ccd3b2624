"""Accuracy, macro-F1 and percentiles agree with hand-worked values and with numpy/sklearn."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import f1_score

from sluice.models.metrics import accuracy, macro_f1, percentile


def test_accuracy() -> None:
    """Share of exact matches; None never matches."""
    assert accuracy(["a", "b", None, "a"], ["a", "a", "b", "a"]) == 0.5


def test_macro_f1_hand_worked() -> None:
    """Label a: P=1/2 R=1/1 F=2/3; label b: P=0 R=0 F=0; mean 1/3."""
    assert macro_f1(["a", "a"], ["a", "b"]) == pytest.approx(1 / 3)


def test_macro_f1_matches_sklearn() -> None:
    """Same value as scikit-learn's macro F1 over the gold labels, on random data."""
    rng = random.Random(5)
    gold = [rng.choice("abcde") for _ in range(500)]
    predicted = [g if rng.random() < 0.7 else rng.choice("abcdef") for g in gold]
    expected = f1_score(gold, predicted, average="macro", labels=sorted(set(gold)))
    assert macro_f1(predicted, gold) == pytest.approx(expected)


def test_percentile_matches_numpy() -> None:
    """Linear interpolation, like numpy.percentile."""
    values = [random.Random(7).random() for _ in range(101)]
    for q in (0, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_empty_inputs_are_errors() -> None:
    """No examples or no values raise instead of dividing by zero."""
    with pytest.raises(ValueError, match="no"):
        accuracy([], [])
    with pytest.raises(ValueError, match="no"):
        percentile([], 50)
