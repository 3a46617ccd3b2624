"""Training local classifier heads, and reusing them when nothing changed.

:func:`train_head` fits a linear SVM on a weighted feature stack and calibrates it by
temperature scaling on out-of-fold scores. :func:`ensure_artifact` wraps it with the artifact
cache: the same data, parameters and code version always map to the same directory, which is
reused when present.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sluice.errors import ConfigError
from sluice.models.artifacts import (
    TrainedHead,
    artifact_key,
    file_digest,
    is_complete,
    save_head,
)
from sluice.models.features import FeatureSet, hstack
from sluice.models.splits import read_examples

#: Version of the training code; bump it when a change alters what training produces.
TRAINING_CODE_VERSION = "2"

#: Receives one line of human-readable progress per long step.
Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    """Progress sink that drops everything."""


@dataclass(frozen=True, slots=True)
class TrainingParams:
    """Everything that shapes a trained head (and therefore its artifact key).

    ``features`` maps feature blocks to weights; ``c`` is the SVM's inverse regularisation;
    ``calibration`` is ``"temperature"`` or ``"none"``; ``cv_folds`` out-of-fold splits feed
    the temperature fit; ``seed`` fixes the folds.
    """

    features: Mapping[str, float]
    c: float = 1.0
    calibration: str = "temperature"
    cv_folds: int = 3
    seed: int = 0
    max_iter: int = 5000
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, used in the artifact key and metadata."""
        data = asdict(self)
        data["features"] = dict(self.features)
        data["extra"] = dict(self.extra)
        return data


def _fit_svm(matrix: Any, targets: Any, params: TrainingParams) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=params.c, max_iter=params.max_iter, random_state=params.seed)
    with warnings.catch_warnings():
        # The last digits of convergence do not move accuracy; the warning would only be noise.
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm.fit(matrix, targets)
    return svm


def _scores(svm: Any, matrix: Any, n_classes: int) -> Any:
    import numpy as np

    raw = np.asarray(svm.decision_function(matrix), dtype=np.float64)
    if n_classes == 2:
        # A binary SVM returns one margin; spread it over both classes for a softmax.
        raw = np.stack([-raw / 2, raw / 2], axis=1)
    return raw


def _out_of_fold_scores(
    matrix: Any, targets: Any, n_classes: int, params: TrainingParams, progress: Progress
) -> Any | None:
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(targets).min())
    folds = min(params.cv_folds, smallest)
    if folds < 2:
        progress("  too few examples per label for out-of-fold calibration; temperature = 1")
        return None
    scores = np.zeros((matrix.shape[0], n_classes))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=params.seed)
    for fold, (fit_rows, held_rows) in enumerate(splitter.split(matrix, targets), start=1):
        started = time.perf_counter()
        svm = _fit_svm(matrix[fit_rows], targets[fit_rows], params)
        scores[held_rows] = _scores(svm, matrix[held_rows], n_classes)
        progress(f"  calibration fold {fold}/{folds} ({time.perf_counter() - started:.1f}s)")
    return scores


def train_head(
    texts: Sequence[str],
    labels: Sequence[str],
    params: TrainingParams,
    progress: Progress = no_progress,
) -> TrainedHead:
    """Fit features, a linear SVM head and its temperature on labelled texts."""
    import numpy as np

    from sluice.models.calibration import fit_temperature, softmax

    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ConfigError("training needs at least two labels")
    if params.calibration not in {"temperature", "none"}:
        raise ConfigError(f"unknown calibration {params.calibration!r}")
    index = {label: i for i, label in enumerate(classes)}
    targets = np.array([index[label] for label in labels])
    features = FeatureSet(params.features)

    started = time.perf_counter()
    progress(f"  features {'+'.join(features.blocks)} on {len(texts)} texts")
    features.fit(texts)
    blocks = features.transform(texts)
    matrix = hstack(blocks)
    progress(f"  features ready ({time.perf_counter() - started:.1f}s, {matrix.shape[1]} columns)")

    temperature = 1.0
    meta: dict[str, Any] = {"params": params.as_dict(), "train_rows": len(texts)}
    if params.calibration == "temperature":
        oof = _out_of_fold_scores(matrix, targets, len(classes), params, progress)
        if oof is not None:
            temperature = fit_temperature(oof, targets)
            probs = softmax(oof, temperature)
            meta["cv_accuracy"] = float((probs.argmax(axis=1) == targets).mean())
            meta["cv_mean_confidence"] = float(probs.max(axis=1).mean())

    fit_started = time.perf_counter()
    svm = _fit_svm(matrix, targets, params)
    elapsed = time.perf_counter() - fit_started
    progress(f"  head fitted ({elapsed:.1f}s), temperature {temperature:.4f}")
    coef = np.asarray(svm.coef_, dtype=np.float32)
    intercept = np.asarray(svm.intercept_, dtype=np.float32)
    if len(classes) == 2:
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    coefs = []
    start = 0
    for width in features.widths(blocks):
        coefs.append(np.ascontiguousarray(coef[:, start : start + width]))
        start += width
    meta["train_seconds"] = round(time.perf_counter() - started, 2)
    return TrainedHead(
        labels=classes,
        weights=features.weights,
        coefs=coefs,
        intercept=intercept,
        temperature=temperature,
        vectorizers=features.vectorizers,
        meta=meta,
    )


def _library_versions() -> str:
    import numpy
    import sklearn

    # Pickled vectorizers are tied to the scikit-learn version that wrote them.
    return f"{TRAINING_CODE_VERSION}/sklearn-{sklearn.__version__}/numpy-{numpy.__version__}"


def artifact_dir(models_dir: Path, name: str, train_path: Path, params: TrainingParams) -> Path:
    """Where the artifact for ``name`` trained on ``train_path`` with ``params`` lives."""
    key = artifact_key(file_digest(train_path), params.as_dict(), _library_versions())
    return models_dir / f"{name}-{key}"


def ensure_artifact(
    name: str,
    train_path: Path,
    params: TrainingParams,
    models_dir: Path,
    *,
    progress: Progress = no_progress,
    force: bool = False,
) -> tuple[Path, bool]:
    """Return the artifact directory for this model, training it first if needed.

    The second element says whether training ran. ``force`` retrains even when a complete
    artifact exists (it is replaced).
    """

    directory = artifact_dir(models_dir, name, train_path, params)
    if is_complete(directory) and not force:
        progress(f"{name}: reusing {directory}")
        return directory, False
    if force and directory.exists():
        shutil.rmtree(directory)
    examples = read_examples(train_path)
    progress(f"{name}: training on {train_path} ({len(examples)} rows)")
    head = train_head([e.text for e in examples], [e.label for e in examples], params, progress)
    head.meta.update({"name": name, "train_path": str(train_path)})
    save_head(directory, head)
    progress(f"{name}: saved {directory}")
    return directory, True
