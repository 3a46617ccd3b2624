"""The cascade over real local models: escalation, costs, and agreement with the tuner."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.errors import ConfigError
from sluice.models.base import Model, ModelRequest
from sluice.models.calibration import softmax
from sluice.models.cascade import Cascade, Tier
from sluice.models.local import LocalClassifier
from sluice.models.metrics import accuracy
from sluice.models.splits import Example
from sluice.models.tuning import (
    TierOutcomes,
    collect_outcomes,
    evaluate_thresholds,
    tune_thresholds,
)

TEXT = "I still have not received my new card, it has been two weeks"


class TestCascade:
    async def test_confident_first_tier_answers_alone(
        self, tfidf_model: LocalClassifier, stacked_model: LocalClassifier
    ) -> None:
        """Threshold 0: the first tier's answer is final and only its cost is paid."""
        cascade = Cascade([Tier(tfidf_model, 0.0), Tier(stacked_model)])
        outcome = await cascade.run(ModelRequest(TEXT))
        assert outcome.tiers_run == ("small",)
        assert not outcome.escalated
        assert outcome.cost == pytest.approx(0.00001)

    async def test_unsure_first_tier_escalates(
        self, tfidf_model: LocalClassifier, stacked_model: LocalClassifier
    ) -> None:
        """Threshold 1: every answer escalates, costs add up, the last tier's answer wins."""
        cascade = Cascade([Tier(tfidf_model, 1.0), Tier(stacked_model)])
        outcome = await cascade.run(ModelRequest(TEXT))
        assert outcome.steps[0].confidence < 1.0
        assert outcome.tiers_run == ("small", "large")
        assert outcome.escalated
        assert outcome.cost == pytest.approx(0.00021)
        assert outcome.result.model == "large"
        assert outcome.result.label == "card_arrival"
        assert outcome.latency_ms >= outcome.steps[1].latency_ms

    async def test_cascade_is_a_model(self, tfidf_model: LocalClassifier) -> None:
        """predict() reports the final label, the tiers that ran and the total cost."""
        model: Model = Cascade([Tier(tfidf_model, 0.5)], name="triage")
        result = await model.predict(ModelRequest(TEXT))
        assert result.output["tiers"] == ["small"]
        assert result.output["escalated"] is False
        assert result.label == result.output["label"]
        assert "small@" in model.version

    def test_threshold_out_of_range(self, tfidf_model: LocalClassifier) -> None:
        """A threshold outside 0..1 is a ConfigError with the tier's path."""
        with pytest.raises(ConfigError, match=r"tiers\[0\]\.threshold"):
            Cascade([Tier(tfidf_model, 1.5), Tier(tfidf_model)])


async def test_live_cascade_matches_tuned_plan(
    tfidf_model: LocalClassifier,
    stacked_model: LocalClassifier,
    held_out: list[Example],
    held_out_scores: Any,
) -> None:
    """Tuned on a golden set, the live cascade reproduces the plan's accuracy and escalation,
    and beats the first tier alone."""
    texts = [e.text for e in held_out]
    gold = [e.label for e in held_out]
    small = tfidf_model.predict_batch(texts)
    large = softmax(held_out_scores, stacked_model.temperature)
    tiers = [
        TierOutcomes("small", [p.label for p in small], [p.confidence for p in small], 0.00001),
        TierOutcomes(
            "large",
            [stacked_model.labels[i] for i in large.argmax(axis=1)],
            list(large.max(axis=1)),
            0.0002,
        ),
    ]
    small_accuracy = accuracy(tiers[0].labels, gold)
    plan = tune_thresholds(tiers, gold, small_accuracy + 0.05, max_escalation=0.5)
    assert plan.accuracy > small_accuracy
    cascade = Cascade([Tier(tfidf_model, plan.thresholds[0]), Tier(stacked_model)])
    outcomes = [await cascade.run(ModelRequest(text)) for text in texts]
    live = accuracy([o.result.label for o in outcomes], gold)
    assert live == pytest.approx(plan.accuracy, abs=0.01)
    escalated = sum(o.escalated for o in outcomes) / len(outcomes)
    assert escalated == pytest.approx(plan.escalation_rate, abs=0.01)
    assert evaluate_thresholds(tiers, gold, plan.thresholds) == plan


async def test_collect_outcomes_batch_and_single_paths_agree(
    tfidf_model: LocalClassifier, held_out: list[Example]
) -> None:
    """Outcomes gathered through the batch path equal those from one predict() per text."""
    texts = [e.text for e in held_out[:30]]
    batch = await collect_outcomes(tfidf_model, texts, cost_per_call=0.00001)
    single = await collect_outcomes(tfidf_model, texts)
    assert batch.labels == single.labels
    assert batch.confidences == pytest.approx(single.confidences, abs=1e-6)
    assert single.cost_per_call == pytest.approx(0.00001)
