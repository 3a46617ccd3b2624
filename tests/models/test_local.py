"""Local classifiers trained for real: accuracy, calibration, the fast path, the artifact cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice.models.artifacts import ArtifactError, load_head
from sluice.models.base import Model, ModelRequest
from sluice.models.calibration import expected_calibration_error, softmax
from sluice.models.local import LocalClassifier
from sluice.models.metrics import accuracy
from sluice.models.splits import Example
from sluice.models.training import TrainingParams, ensure_artifact


def _score(model: LocalClassifier, held_out: list[Example]) -> float:
    predictions = model.predict_batch([e.text for e in held_out])
    return accuracy([p.label for p in predictions], [e.label for e in held_out])


class TestAccuracy:
    def test_tfidf_learns_the_intents(
        self, tfidf_model: LocalClassifier, held_out: list[Example]
    ) -> None:
        """Trained on 12 examples per intent, TF-IDF beats 70% on unseen tickets (chance: 1.3%)."""
        assert len(tfidf_model.labels) == 77
        assert _score(tfidf_model, held_out) > 0.70

    def test_stacked_beats_tfidf(
        self,
        tfidf_model: LocalClassifier,
        stacked_model: LocalClassifier,
        held_out: list[Example],
        held_out_scores: Any,
    ) -> None:
        """Adding MiniLM and wordllama embeddings lifts accuracy clearly on the same data."""
        labels = [stacked_model.labels[i] for i in held_out_scores.argmax(axis=1)]
        stacked = accuracy(labels, [e.label for e in held_out])
        assert stacked > _score(tfidf_model, held_out) + 0.03


class TestCalibration:
    def test_temperature_lowers_calibration_error(
        self, stacked_model: LocalClassifier, held_out: list[Example], held_out_scores: Any
    ) -> None:
        """Fitted temperature gives a much lower ECE on unseen data than raw scores (T=1)."""
        gold = [e.label for e in held_out]
        scores = held_out_scores

        def ece(temperature: float) -> float:
            probs = softmax(scores, temperature)
            labels = [stacked_model.labels[i] for i in probs.argmax(axis=1)]
            correct = [p == g for p, g in zip(labels, gold, strict=True)]
            return expected_calibration_error(list(probs.max(axis=1)), correct)

        assert stacked_model.temperature != 1.0
        assert ece(stacked_model.temperature) < 0.1 < ece(1.0)

    def test_confidences_are_probabilities(
        self, tfidf_model: LocalClassifier, held_out: list[Example]
    ) -> None:
        """Rows sum to one; the confidence is the top probability."""
        probs = tfidf_model.predict_proba([e.text for e in held_out[:20]])
        assert np.allclose(probs.sum(axis=1), 1.0)
        predictions = tfidf_model.predict_batch([e.text for e in held_out[:20]])
        assert [p.confidence for p in predictions] == pytest.approx(list(probs.max(axis=1)))


class TestPredict:
    def test_single_path_equals_batch_path(
        self, stacked_model: LocalClassifier, held_out: list[Example], held_out_scores: Any
    ) -> None:
        """The hand-rolled single-text path gives the batch path's scores."""
        one = np.stack([stacked_model.scores_one(e.text) for e in held_out[:10]])
        assert np.allclose(one, held_out_scores[:10], atol=1e-4)

    async def test_predict_returns_a_costed_result(self, stacked_model: LocalClassifier) -> None:
        """predict() answers with label, calibrated confidence, top-3, price and version."""
        model: Model = stacked_model
        result = await model.predict(ModelRequest("How do I top up with a cheque?"))
        assert result.model == "large"
        assert result.label == result.output["label"]
        assert len(result.output["top"]) == 3
        assert 0 < result.confidence <= 1
        assert result.cost == 0.0002
        assert result.latency_ms > 0
        assert model.version == stacked_model.meta["version"]

    async def test_labels_restrict_the_answer(self, tfidf_model: LocalClassifier) -> None:
        """With request.labels, the answer is one of them and probabilities renormalise."""
        request = ModelRequest("my card has not arrived", labels=["exchange_rate", "top_up_failed"])
        result = await tfidf_model.predict(request)
        assert result.label in {"exchange_rate", "top_up_failed"}
        top = dict(result.output["top"])
        assert sum(top[label] for label in request.labels or ()) == pytest.approx(1.0, abs=1e-5)


class TestArtifacts:
    def test_reused_when_unchanged_and_retrained_when_changed(
        self, app_dir: Path, tmp_path: Path
    ) -> None:
        """Same data and params reuse the artifact; other params or data make a new one."""
        train = app_dir / "data" / "train.csv"
        params = TrainingParams({"tfidf_word": 1.0}, c=1.0, cv_folds=2)
        first, trained = ensure_artifact("m", train, params, tmp_path)
        assert trained
        assert first.name.startswith("m-")
        again, trained_again = ensure_artifact("m", train, params, tmp_path)
        assert (again, trained_again) == (first, False)
        other_params, _ = ensure_artifact(
            "m", train, TrainingParams({"tfidf_word": 1.0}, c=2.0, cv_folds=2), tmp_path
        )
        assert other_params != first
        changed = tmp_path / "train.csv"
        changed.write_text(train.read_text().replace("card", "Card", 1))
        other_data, _ = ensure_artifact("m", changed, params, tmp_path)
        assert other_data not in (first, other_params)
        meta = json.loads((first / "meta.json").read_text())
        assert meta["params"]["c"] == 1.0
        assert meta["train_rows"] == 924

    def test_reload_gives_same_answers(self, tfidf_model: LocalClassifier, app_dir: Path) -> None:
        """A classifier loaded from its artifact predicts exactly like the one trained."""
        (directory,) = (app_dir / ".sluice" / "models").glob("small-*")
        again = LocalClassifier.from_artifact("small", directory)
        texts = ["cancel my transfer", "what is the exchange rate"]
        assert np.array_equal(again.predict_proba(texts), tfidf_model.predict_proba(texts))

    def test_incomplete_artifact_is_refused(self, app_dir: Path, tmp_path: Path) -> None:
        """A directory without meta.json (an interrupted write) is an ArtifactError."""
        (directory,) = (app_dir / ".sluice" / "models").glob("small-*")
        copy = tmp_path / "broken"
        shutil.copytree(directory, copy)
        (copy / "meta.json").unlink()
        with pytest.raises(ArtifactError, match="no complete model artifact"):
            load_head(copy)
