"""Evaluation helpers: accuracy, macro-F1 and percentiles, in plain Python.

They take plain sequences so that benchmarks, golden suites and threshold tuning share one
definition, and the core install (without numpy) can use them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def accuracy(predicted: Sequence[str | None], gold: Sequence[str]) -> float:
    """Share of predictions equal to the gold label (0..1)."""
    if len(predicted) != len(gold):
        raise ValueError("predicted and gold differ in length")
    if not gold:
        raise ValueError("no examples")
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def macro_f1(predicted: Sequence[str | None], gold: Sequence[str]) -> float:
    """F1 averaged over the gold labels, each weighted equally (0..1).

    Labels only ever predicted (never gold) count as false positives of nobody's class, as in
    scikit-learn's ``f1_score(average="macro", labels=gold_labels)``.
    """
    if len(predicted) != len(gold):
        raise ValueError("predicted and gold differ in length")
    if not gold:
        raise ValueError("no examples")
    true_pos: Counter[str] = Counter()
    pred_count: Counter[str | None] = Counter(predicted)
    gold_count: Counter[str] = Counter(gold)
    for p, g in zip(predicted, gold, strict=True):
        if p == g:
            true_pos[g] += 1
    scores = []
    for label, support in gold_count.items():
        tp = true_pos[label]
        denominator = pred_count[label] + support
        scores.append(2 * tp / denominator if denominator else 0.0)
    return sum(scores) / len(scores)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation, like ``numpy.percentile``."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
