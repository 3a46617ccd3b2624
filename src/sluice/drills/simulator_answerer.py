"""The simulator's built-in answering model: TF-IDF features and logistic regression.

A real classifier, trained in a few seconds from a ``text,category`` CSV, so a load test or a
chaos drill gets answers with the shape and confidence spread of a real model even when no
model is configured. scikit-learn is imported when a model is trained, never with the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sluice.errors import ConfigError
from sluice.models.base import ModelRequest, ModelResult
from sluice.models.splits import Example, read_examples


class TfidfAnswerer:
    """TF-IDF (word 1-2 grams) + logistic regression, behind the Model protocol."""

    def __init__(self, pipeline: Any, name: str = "sim-tfidf", version: str = "1") -> None:
        self._pipeline = pipeline
        self._classes: list[str] = [str(label) for label in pipeline.classes_]
        self._name = name
        self._version = version

    @classmethod
    def train(
        cls, examples: Sequence[Example], name: str = "sim-tfidf", c: float = 10.0
    ) -> TfidfAnswerer:
        """Fit on ``examples``; at least two labels are needed."""
        if len({example.label for example in examples}) < 2:
            raise ConfigError("the built-in answerer needs examples of at least two labels")
        # Lazy: scikit-learn is an optional dependency and slow to import.
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        pipeline = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
            LogisticRegression(C=c, max_iter=1000),
        )
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

        # A few hundred rows fit in under a second on one thread; BLAS threads contending for
        # the cores of a shared machine made the same fit six times slower.
        with threadpool_limits(limits=1):
            pipeline.fit([e.text for e in examples], [e.label for e in examples])
        return cls(pipeline, name=name, version=f"tfidf-lr-{len(examples)}")

    @classmethod
    def from_csv(
        cls, path: Path, limit: int | None = None, name: str = "sim-tfidf"
    ) -> TfidfAnswerer:
        """Train on a ``text,category`` CSV, or on ``limit`` rows spread evenly through it.

        Evenly spread rather than the first rows, because labelled files are often grouped
        by label.
        """
        examples = read_examples(path)
        if limit and limit < len(examples):
            examples = examples[:: len(examples) // limit][:limit]
        return cls.train(examples, name=name)

    @property
    def name(self) -> str:
        """Stable model name."""
        return self._name

    @property
    def version(self) -> str:
        """Identifies the training set size; retraining on other data changes answers."""
        return self._version

    async def predict(self, request: ModelRequest) -> ModelResult:
        """The most probable label, among ``request.labels`` when they overlap the known ones."""
        probabilities = self._pipeline.predict_proba([request.text])[0]
        scores = dict(zip(self._classes, (float(p) for p in probabilities), strict=True))
        allowed = [label for label in request.labels or () if label in scores]
        if allowed:
            total = sum(scores[label] for label in allowed) or 1.0
            scores = {label: scores[label] / total for label in allowed}
        label = max(scores, key=scores.__getitem__)
        confidence = scores[label]
        return ModelResult(
            model=self._name, output={"label": label}, label=label, confidence=confidence
        )
