"""Tuning cascade thresholds on a golden set: reach a target accuracy at the lowest cost.

Given every tier's answer and confidence for each golden example (one pass of each model over
the set), any choice of thresholds can be evaluated without calling a model again. The tuner
searches thresholds over the observed confidences and keeps, among the choices that reach the
target accuracy (and stay within an optional escalation cap), the one with the lowest mean
cost per example; ties go to the higher accuracy. Plain Python: it needs no model extra.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: A threshold no confidence reaches: every example escalates past that tier.
ALWAYS_ESCALATE = math.nextafter(1.0, 2.0)
#: Upper bound on evaluated threshold combinations, which keeps three or more tiers fast.
_MAX_COMBINATIONS = 20_000


@dataclass(frozen=True, slots=True)
class TierOutcomes:
    """One tier's answers on the golden set, in example order, and its cost per call."""

    name: str
    labels: Sequence[str | None]
    confidences: Sequence[float]
    cost_per_call: float


@dataclass(frozen=True, slots=True)
class CascadePlan:
    """Thresholds and what they achieve on the golden set.

    ``thresholds`` has one entry per tier but the last; ``answered_by`` is the share of
    examples each tier answered; ``escalation_rate`` the share that went past the first tier.
    """

    thresholds: tuple[float, ...]
    accuracy: float
    mean_cost: float
    escalation_rate: float
    answered_by: tuple[float, ...]
    reached_target: bool = True


def evaluate_thresholds(
    tiers: Sequence[TierOutcomes], gold: Sequence[str], thresholds: Sequence[float]
) -> CascadePlan:
    """What the cascade with these thresholds does on the golden set."""
    _check(tiers, gold)
    if len(thresholds) != len(tiers) - 1:
        raise ValueError("need one threshold per tier but the last")
    n = len(gold)
    answered = [0] * len(tiers)
    correct = 0
    cost = 0.0
    last = len(tiers) - 1
    for i in range(n):
        for t, tier in enumerate(tiers):
            cost += tier.cost_per_call
            if t == last or tier.confidences[i] >= thresholds[t]:
                answered[t] += 1
                correct += tier.labels[i] == gold[i]
                break
    return CascadePlan(
        thresholds=tuple(thresholds),
        accuracy=correct / n,
        mean_cost=cost / n,
        escalation_rate=(n - answered[0]) / n,
        answered_by=tuple(count / n for count in answered),
    )


def _candidates(confidences: Sequence[float], limit: int) -> list[float]:
    values = sorted(set(confidences))
    if len(values) > limit:
        # Evenly spaced order statistics keep the grid dense where confidences are dense.
        step = (len(values) - 1) / (limit - 1)
        values = sorted({values[round(k * step)] for k in range(limit)})
    return [0.0, *values, ALWAYS_ESCALATE]


def _better(plan: CascadePlan, best: CascadePlan | None, target: float) -> bool:
    if best is None:
        return True
    reached, best_reached = plan.accuracy >= target, best.accuracy >= target
    if reached != best_reached:
        return reached
    if reached:
        return (plan.mean_cost, -plan.accuracy) < (best.mean_cost, -best.accuracy)
    # Neither reaches the target: the closest to it wins, then the cheaper.
    return (-plan.accuracy, plan.mean_cost) < (-best.accuracy, best.mean_cost)


def tune_thresholds(
    tiers: Sequence[TierOutcomes],
    gold: Sequence[str],
    target_accuracy: float,
    *,
    max_escalation: float = 1.0,
    max_candidates: int = 400,
) -> CascadePlan:
    """Pick thresholds reaching ``target_accuracy`` at the lowest mean cost.

    ``max_escalation`` caps the share of examples sent past the first tier. When no choice
    reaches the target, the most accurate one within the cap is returned with
    ``reached_target=False``.
    """
    _check(tiers, gold)
    if len(tiers) == 1:
        plan = evaluate_thresholds(tiers, gold, ())
        return _mark(plan, target_accuracy)
    per_tier = max(2, int(_MAX_COMBINATIONS ** (1 / (len(tiers) - 1))))
    limit = min(max_candidates, per_tier)
    grids = [_candidates(tier.confidences, limit) for tier in tiers[:-1]]
    best: CascadePlan | None = None
    for thresholds in itertools.product(*grids):
        plan = evaluate_thresholds(tiers, gold, thresholds)
        if plan.escalation_rate <= max_escalation and _better(plan, best, target_accuracy):
            best = plan
    if best is None:
        # Even "never escalate" breaks the cap only if the cap is negative; keep it total.
        best = evaluate_thresholds(tiers, gold, [0.0] * (len(tiers) - 1))
    return _mark(best, target_accuracy)


def _mark(plan: CascadePlan, target: float) -> CascadePlan:
    return CascadePlan(
        thresholds=plan.thresholds,
        accuracy=plan.accuracy,
        mean_cost=plan.mean_cost,
        escalation_rate=plan.escalation_rate,
        answered_by=plan.answered_by,
        reached_target=plan.accuracy >= target,
    )


def _check(tiers: Sequence[TierOutcomes], gold: Sequence[str]) -> None:
    if not tiers:
        raise ValueError("no tiers")
    if not gold:
        raise ValueError("empty golden set")
    for tier in tiers:
        if len(tier.labels) != len(gold) or len(tier.confidences) != len(gold):
            raise ValueError(f"tier {tier.name!r}: answers and golden set differ in length")
