"""Threshold tuning: the cheapest thresholds that reach the target, checked by brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from sluice.models.tuning import (
    ALWAYS_ESCALATE,
    TierOutcomes,
    evaluate_thresholds,
    tune_thresholds,
)


def _golden(n: int = 400, seed: int = 11) -> tuple[list[str], list[TierOutcomes]]:
    """A cheap tier right when confident, a dearer tier right more often."""
    rng = random.Random(seed)
    gold = [rng.choice("abcd") for _ in range(n)]
    small_conf = [rng.random() for _ in range(n)]
    small = [
        g if rng.random() < 0.5 + 0.5 * c else "x" for g, c in zip(gold, small_conf, strict=True)
    ]
    large = [g if rng.random() < 0.95 else "y" for g in gold]
    tiers = [
        TierOutcomes("small", small, small_conf, 1.0),
        TierOutcomes("large", large, [0.9] * n, 10.0),
    ]
    return gold, tiers


class TestEvaluate:
    def test_extremes(self) -> None:
        """Threshold 0 keeps everything on tier 1; ALWAYS_ESCALATE sends all to tier 2."""
        gold, tiers = _golden()
        never = evaluate_thresholds(tiers, gold, [0.0])
        always = evaluate_thresholds(tiers, gold, [ALWAYS_ESCALATE])
        assert never.escalation_rate == 0
        assert never.mean_cost == 1.0
        assert always.escalation_rate == 1
        assert always.mean_cost == 11.0
        assert always.answered_by == (0.0, 1.0)


class TestTune:
    def test_cheapest_plan_reaching_target(self) -> None:
        """No threshold among the observed confidences is cheaper and still on target."""
        gold, tiers = _golden()
        plan = tune_thresholds(tiers, gold, 0.9, stable=False)
        assert plan.reached_target
        assert plan.accuracy >= 0.9
        for t in [0.0, *tiers[0].confidences, ALWAYS_ESCALATE]:
            other = evaluate_thresholds(tiers, gold, [t])
            if other.accuracy >= 0.9:
                assert other.mean_cost >= plan.mean_cost

    def test_unreachable_target_returns_most_accurate(self) -> None:
        """A target above every plan gives the most accurate plan, flagged as not reached."""
        gold, tiers = _golden()
        plan = tune_thresholds(tiers, gold, 0.999)
        assert not plan.reached_target
        best = max(
            evaluate_thresholds(tiers, gold, [t]).accuracy
            for t in [0.0, *tiers[0].confidences, ALWAYS_ESCALATE]
        )
        assert plan.accuracy == best

    def test_escalation_cap(self) -> None:
        """max_escalation bounds the share sent to the second tier."""
        gold, tiers = _golden()
        plan = tune_thresholds(tiers, gold, 0.999, max_escalation=0.2)
        assert plan.escalation_rate <= 0.2
        assert plan.accuracy < tune_thresholds(tiers, gold, 0.999).accuracy

    def test_three_tiers_brute_force(self) -> None:
        """With three tiers the tuner matches an exhaustive search on a small grid."""
        rng = random.Random(3)
        n = 60
        gold = [rng.choice("ab") for _ in range(n)]
        tiers = []
        for name, skill, cost in (("s", 0.6, 1.0), ("m", 0.8, 3.0), ("l", 0.97, 9.0)):
            conf = [round(rng.random(), 1) for _ in range(n)]
            labels = [
                g if rng.random() < skill + (1 - skill) * c else "z"
                for g, c in zip(gold, conf, strict=True)
            ]
            tiers.append(TierOutcomes(name, labels, conf, cost))
        plan = tune_thresholds(tiers, gold, 0.85, stable=False)
        grid = [0.0, *sorted(set(tiers[0].confidences)), ALWAYS_ESCALATE]
        grid2 = [0.0, *sorted(set(tiers[1].confidences)), ALWAYS_ESCALATE]
        feasible = [
            evaluate_thresholds(tiers, gold, [a, b]) for a, b in itertools.product(grid, grid2)
        ]
        feasible = [p for p in feasible if p.accuracy >= 0.85]
        assert plan.reached_target
        assert plan.mean_cost == pytest.approx(min(p.mean_cost for p in feasible))

    def test_stable_plan_holds_for_every_higher_threshold(self) -> None:
        """The stable plan reaches the target, and so does every plan escalating more."""
        gold, tiers = _golden()
        plan = tune_thresholds(tiers, gold, 0.9)
        assert plan.reached_target
        for t in [*tiers[0].confidences, ALWAYS_ESCALATE]:
            if t >= plan.thresholds[0]:
                assert evaluate_thresholds(tiers, gold, [t]).accuracy >= 0.9

    def test_stable_plan_skips_a_lucky_spike(self) -> None:
        """A threshold that reaches the target only by luck, with worse ones above it, is
        passed over for one whose neighbours above hold too."""
        gold = ["a"] * 10
        # The cheap tier is luckily right on items 7 and 8, exactly where the strong tier is
        # wrong: 0.55 reaches 80%, 0.6 to 0.7 fall below it, 0.75 and up hold.
        small = ["a"] * 5 + ["x", "x", "a", "a", "x"]
        large = ["a"] * 7 + ["y", "y", "a"]
        conf = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]
        tiers = [
            TierOutcomes("small", small, conf, 1.0),
            TierOutcomes("large", large, [1.0] * 10, 10.0),
        ]
        spiky = tune_thresholds(tiers, gold, 0.8, stable=False)
        stable = tune_thresholds(tiers, gold, 0.8)
        assert spiky.thresholds == (0.55,)
        assert evaluate_thresholds(tiers, gold, [0.6]).accuracy < 0.8
        assert stable.thresholds == (0.75,)
        assert stable.reached_target
        assert stable.mean_cost > spiky.mean_cost

    def test_mismatched_lengths(self) -> None:
        """Answers and golden set of different lengths are an error naming the tier."""
        gold, tiers = _golden()
        with pytest.raises(ValueError, match="small"):
            tune_thresholds(tiers, gold[:-1], 0.9)
