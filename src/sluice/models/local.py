"""Local classifiers: a trained head over offline features, behind the :class:`Model` protocol.

A :class:`LocalClassifier` answers in-process. Its confidence is the calibrated top
probability, its cost per call comes from configuration, and its version is the artifact's
content hash, so caches keyed on it never serve answers from an older head.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.models.artifacts import TrainedHead, load_head
from sluice.models.base import ModelRequest, ModelResult
from sluice.models.calibration import softmax
from sluice.models.features import FITTED_BLOCKS, FeatureSet

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: How many ranked alternatives a result carries in ``output["top"]``.
TOP_K = 3


@dataclass(frozen=True, slots=True)
class Prediction:
    """One classified text from the batch path: the label, its probability, the runners-up."""

    label: str
    confidence: float
    top: tuple[tuple[str, float], ...]


class LocalClassifier:
    """A calibrated linear classifier over local features; implements :class:`Model`.

    ``predict`` answers one request (work that takes milliseconds, such as a neural encoder,
    runs in a worker thread so the event loop stays free); ``predict_batch`` is the synchronous
    bulk path for evaluation and benchmarks.
    """

    def __init__(self, name: str, head: TrainedHead, *, price_per_call: float = 0.0) -> None:
        self._name = name
        self._head = head
        self._features = FeatureSet(head.weights, head.vectorizers)
        self._version = str(head.meta.get("version", "unversioned"))
        # Row-major copies of sparse blocks' coefficients: one text gathers a few rows.
        self._columns_first = [
            coef.T.copy() if block in FITTED_BLOCKS else None
            for block, coef in zip(head.weights, head.coefs, strict=True)
        ]
        self.price_per_call = price_per_call

    @classmethod
    def from_artifact(
        cls, name: str, directory: Path, *, price_per_call: float = 0.0
    ) -> LocalClassifier:
        """Load a classifier from an artifact directory written by training."""
        head = load_head(directory)
        # The directory name ends with the content hash: that is the version.
        head.meta.setdefault("version", directory.name.rsplit("-", 1)[-1])
        return cls(name, head, price_per_call=price_per_call)

    @property
    def name(self) -> str:
        """Stable model name from configuration."""
        return self._name

    @property
    def version(self) -> str:
        """Content hash of the trained artifact."""
        return self._version

    @property
    def labels(self) -> list[str]:
        """The labels this classifier can answer, in column order."""
        return list(self._head.labels)

    @property
    def temperature(self) -> float:
        """The fitted calibration temperature."""
        return self._head.temperature

    @property
    def meta(self) -> dict[str, Any]:
        """Training metadata (parameters, rows, cross-validated accuracy)."""
        return dict(self._head.meta)

    def scores(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Raw head scores, one row per text and one column per label."""
        import numpy as np

        total = np.tile(self._head.intercept.astype(np.float64), (len(texts), 1))
        for matrix, coef in zip(self._features.transform(texts), self._head.coefs, strict=True):
            total += np.asarray(matrix @ coef.T)
        return total

    def scores_one(self, text: str) -> NDArray[np.float64]:
        """Raw head scores of one text (the single-request path; same numbers as ``scores``)."""
        import numpy as np

        total = self._head.intercept.astype(np.float64)
        parts = self._features.transform_one(text)
        for part, coef, rows in zip(parts, self._head.coefs, self._columns_first, strict=True):
            if rows is None:
                total += coef @ part
            else:
                columns, values = part
                if len(columns):
                    total += values @ rows[columns]
        return total

    def predict_one(self, text: str, labels: Sequence[str] | None = None) -> Prediction:
        """Classify one text on the single-request path."""
        probs = softmax(self.scores_one(text)[None, :], self._head.temperature)
        return self._rank(probs, labels)[0]

    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Calibrated probabilities, one row per text and one column per label."""
        return softmax(self.scores(texts), self._head.temperature)

    def predict_batch(
        self, texts: Sequence[str], labels: Sequence[str] | None = None
    ) -> list[Prediction]:
        """Classify many texts at once (synchronous); ``labels`` restricts the answers."""

        return self._rank(self.predict_proba(texts), labels)

    def _rank(self, probs: NDArray[np.float64], labels: Sequence[str] | None) -> list[Prediction]:
        import numpy as np

        if labels is not None:
            wanted = set(labels)
            allowed = np.array([label in wanted for label in self._head.labels])
            if allowed.any():
                probs = probs * allowed
                probs /= probs.sum(axis=1, keepdims=True)
        k = min(TOP_K, probs.shape[1])
        order = np.argsort(-probs, axis=1)[:, :k]
        names = self._head.labels
        return [
            Prediction(
                label=names[row[0]],
                confidence=float(p[row[0]]),
                top=tuple((names[i], round(float(p[i]), 6)) for i in row),
            )
            for p, row in zip(probs, order, strict=True)
        ]

    def _answer(self, request: ModelRequest) -> ModelResult:
        started = time.perf_counter()
        prediction = self.predict_one(request.text, request.labels)
        return ModelResult(
            model=self._name,
            output={"label": prediction.label, "top": [list(pair) for pair in prediction.top]},
            label=prediction.label,
            confidence=prediction.confidence,
            cost=self.price_per_call,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    @property
    def slow(self) -> bool:
        """Whether a call runs a neural encoder (milliseconds; worth batching)."""
        return bool(self._features.slow)

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Classify one request; slow encoders run in a worker thread."""
        if self._features.slow:
            return await asyncio.to_thread(self._answer, request)
        return self._answer(request)

    def warm_up(self) -> None:
        """Load encoders and touch every code path once, so the first request is not slow."""
        self.predict_batch(["warm up"])
        self.predict_one("warm up")
