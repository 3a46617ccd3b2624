"""Calibrated confidences: temperature scaling of a linear head's scores.

A linear SVM's scores rank classes well but are not probabilities. Temperature scaling turns
them into ``softmax(scores / T)`` with one scalar ``T`` fitted to minimise the negative
log-likelihood of held-out (out-of-fold) scores. It never changes the predicted label, so the
head's accuracy is untouched, and it is what makes a cascade threshold such as 0.8 mean "right
about 80% of the time or better".

Chosen by measurement (BANKING77 validation split, wordllama + TF-IDF head): temperature
scaling kept the SVM's accuracy (91.99%) with an expected calibration error of 0.022, where
scikit-learn's ``CalibratedClassifierCV`` (3 folds) gave 91.32% / 0.130 (sigmoid) and
90.85% / 0.064 (isotonic): averaging fold models costs accuracy, and one scalar fits well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: Search range of log(T); scores of a linear SVM live roughly in [-3, 3].
_LOG_T_BOUNDS = (math.log(1e-3), math.log(1e2))


def softmax(scores: NDArray[np.floating], temperature: float = 1.0) -> NDArray[np.float64]:
    """Row-wise ``softmax(scores / temperature)``, computed stably."""
    import numpy as np

    scaled = np.asarray(scores, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    result: NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return result


def negative_log_likelihood(
    scores: NDArray[np.floating], targets: NDArray[np.integer], temperature: float
) -> float:
    """Mean negative log-likelihood of the true classes under ``softmax(scores / T)``."""
    import numpy as np

    probs = softmax(scores, temperature)
    picked = probs[np.arange(len(targets)), targets]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def fit_temperature(scores: NDArray[np.floating], targets: NDArray[np.integer]) -> float:
    """Fit the temperature that minimises the NLL of held-out ``scores`` for ``targets``.

    ``targets`` holds column indices of the true classes. Bounded 1-D search on log(T).
    """
    # scipy ships no type stubs and has no mypy override in pyproject.toml.
    from scipy.optimize import minimize_scalar  # type: ignore[import-untyped]  # no stubs

    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(scores, targets, math.exp(log_t)),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
    )
    return float(math.exp(result.x))


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 15
) -> float:
    """Expected calibration error: the gap between confidence and accuracy, over equal bins.

    Pure Python so it can score any model's answers, local or remote.
    """
    if len(confidences) != len(correct):
        raise ValueError("confidences and correct differ in length")
    if not confidences:
        return 0.0
    totals = [0] * bins
    conf_sums = [0.0] * bins
    hits = [0] * bins
    for confidence, ok in zip(confidences, correct, strict=True):
        index = min(int(confidence * bins), bins - 1)
        totals[index] += 1
        conf_sums[index] += confidence
        hits[index] += int(ok)
    n = len(confidences)
    return sum(abs(hits[i] - conf_sums[i]) / n for i in range(bins) if totals[i])
