"""A cascade run over labelled rows, and the figures ``sluice eval`` and snapshots share.

:func:`run_rows` asks the cascade about each text one at a time (as production sees them)
and keeps each row's answer; :func:`eval_figures` is ``sluice eval``'s report of them and
:func:`snapshot_metrics` the flat metrics a snapshot keeps (the same figures, plus score
quantiles); :func:`label_shares` is the predicted label distribution.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.models.base import ModelRequest
from sluice.models.cascade import Cascade
from sluice.models.metrics import accuracy, macro_f1, percentile

#: The score (final confidence) quantiles a snapshot keeps, as percentiles.
SCORE_QUANTILES = (10, 25, 50, 75, 90)
#: Every metric :func:`snapshot_metrics` measures, in report order.
METRICS = (
    "accuracy",
    "macro_f1",
    "escalation_rate",
    "cost_per_1k",
    "latency_p50_ms",
    "latency_p95_ms",
    *(f"score_p{q}" for q in SCORE_QUANTILES),
)


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """One row's answer: the final label and confidence, whether it escalated, what it cost
    and how long the cascade took."""

    label: str | None
    score: float
    escalated: bool
    cost: float
    latency_ms: float


async def run_rows(
    cascade: Cascade, texts: Sequence[str], on_row: Callable[[], None] | None = None
) -> list[RowOutcome]:
    """Run each text through ``cascade``, one at a time; ``on_row`` after each (progress)."""
    outcomes = []
    for text in texts:
        started = time.perf_counter()
        outcome = await cascade.run(ModelRequest(text=text))
        latency_ms = (time.perf_counter() - started) * 1000
        outcomes.append(
            RowOutcome(
                label=outcome.result.label,
                score=float(outcome.result.confidence),
                escalated=outcome.escalated,
                cost=sum(step.cost for step in outcome.steps),
                latency_ms=latency_ms,
            )
        )
        if on_row is not None:
            on_row()
    return outcomes


def eval_figures(outcomes: Sequence[RowOutcome], gold: Sequence[str]) -> dict[str, Any]:
    """``sluice eval``'s figures: n, accuracy, macro-F1, escalation rate, cost per 1,000 and
    latency percentiles (ms)."""
    predicted = [o.label for o in outcomes]
    latencies = [o.latency_ms for o in outcomes]
    n = len(outcomes)
    return {
        "n": n,
        "accuracy": round(accuracy(predicted, gold), 6),
        "macro_f1": round(macro_f1(predicted, gold), 6),
        "escalation_rate": round(sum(o.escalated for o in outcomes) / n, 6),
        "cost_per_1k": round(sum(o.cost for o in outcomes) / n * 1000, 6),
        "latency_ms": {f"p{q}": round(percentile(latencies, q), 3) for q in (50, 95, 99)},
    }


def snapshot_metrics(outcomes: Sequence[RowOutcome], gold: Sequence[str]) -> dict[str, float]:
    """The metrics of :data:`METRICS`, flat: eval's figures and the score quantiles."""
    figures = eval_figures(outcomes, gold)
    scores = [o.score for o in outcomes]
    metrics = {
        "accuracy": figures["accuracy"],
        "macro_f1": figures["macro_f1"],
        "escalation_rate": figures["escalation_rate"],
        "cost_per_1k": figures["cost_per_1k"],
        "latency_p50_ms": figures["latency_ms"]["p50"],
        "latency_p95_ms": figures["latency_ms"]["p95"],
    }
    for q in SCORE_QUANTILES:
        metrics[f"score_p{q}"] = round(percentile(scores, q), 6)
    return metrics


def label_shares(labels: Sequence[str | None]) -> dict[str, float]:
    """Each predicted label's share of ``labels`` (no answer counts as ``(none)``), sorted."""
    counts = Counter("(none)" if label is None else label for label in labels)
    total = sum(counts.values())
    return {label: counts[label] / total for label in sorted(counts)}
