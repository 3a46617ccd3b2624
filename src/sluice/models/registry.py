"""The ``models:`` section of an app's ``sluice.yaml``: validation and building.

Example::

    models:
      small:
        kind: wordllama            # tfidf | wordllama | minilm | stacked
        train: data/train.csv      # relative to the app directory
        price_per_call: 0.00001
      large:
        kind: stacked
        train: data/train.csv
        price_per_call: 0.0002
        c: 0.5                     # optional: SVM inverse regularisation
        features:                  # optional: block weights, replacing the kind's preset
          minilm: 3
          wordllama: 1
          tfidf_word: 1
          tfidf_char: 1
        calibration: temperature   # temperature | none
        cv_folds: 3

Local kinds train on first use and cache their artifacts under ``APP_DIR/.sluice/models``.
Other kinds (an OpenAI-compatible endpoint, the simulator) plug in through ``builders``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.errors import ConfigError
from sluice.models.base import Model
from sluice.models.features import BLOCKS
from sluice.models.training import Progress, TrainingParams, ensure_artifact, no_progress


@dataclass(frozen=True, slots=True)
class KindPreset:
    """Default features and regularisation of a local model kind."""

    features: Mapping[str, float]
    c: float
    summary: str


#: Local model kinds, measured on the BANKING77 validation split (see bench/models.py).
LOCAL_KINDS: Mapping[str, KindPreset] = {
    "tfidf": KindPreset({"tfidf_word": 1.0, "tfidf_char": 1.0}, 0.5, "TF-IDF word+char, ~0.3 ms"),
    "wordllama": KindPreset(
        {"wordllama": 1.0, "tfidf_word": 1.0}, 1.0, "wordllama + TF-IDF words, ~0.2 ms"
    ),
    "minilm": KindPreset({"minilm": 1.0}, 1.0, "MiniLM sentence embeddings, ~8 ms"),
    "stacked": KindPreset(
        {"minilm": 3.0, "wordllama": 1.0, "tfidf_word": 1.0, "tfidf_char": 1.0},
        0.5,
        "MiniLM + wordllama + TF-IDF word+char, ~9 ms",
    ),
}

_LOCAL_KEYS = frozenset(
    {"kind", "train", "price_per_call", "c", "features", "calibration", "cv_folds", "seed"}
)

#: Builds one model from its config entry; receives (name, entry, app_dir).
Builder = Callable[[str, Mapping[str, Any], Path], Model]
#: Checks one entry of a non-local kind; returns problems prefixed with ``path``.
Validator = Callable[[str, Mapping[str, Any]], list[str]]


def models_dir(app_dir: Path) -> Path:
    """Where an app's trained model artifacts are cached."""
    return app_dir / ".sluice" / "models"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate_local(path: str, entry: Mapping[str, Any]) -> list[str]:
    problems = [f"{path}.{key}: unknown key" for key in sorted(set(entry) - _LOCAL_KEYS)]
    if not isinstance(entry.get("train"), str) or not entry.get("train"):
        problems.append(f"{path}.train: required, a CSV path relative to the app directory")
    for key in ("price_per_call", "c"):
        value = entry.get(key, 0.0 if key == "price_per_call" else 1.0)
        if not _is_number(value) or value < 0 or (key == "c" and value == 0):
            sign = "positive" if key == "c" else "non-negative"
            problems.append(f"{path}.{key}: must be a {sign} number")
    features = entry.get("features")
    if features is not None:
        if not isinstance(features, Mapping) or not features:
            problems.append(f"{path}.features: must map feature blocks to weights")
        else:
            for block, weight in features.items():
                if block not in BLOCKS:
                    problems.append(
                        f"{path}.features.{block}: unknown block; known: {list(BLOCKS)}"
                    )
                elif not _is_number(weight) or weight <= 0:
                    problems.append(f"{path}.features.{block}: weight must be a positive number")
    if entry.get("calibration", "temperature") not in {"temperature", "none"}:
        problems.append(f"{path}.calibration: must be 'temperature' or 'none'")
    for key in ("cv_folds", "seed"):
        value = entry.get(key, 3)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{path}.{key}: must be a non-negative integer")
    return problems


def validate_models(
    spec: Any, *, validators: Mapping[str, Validator] | None = None, root: str = "models"
) -> list[str]:
    """Return every problem in a ``models:`` section, each prefixed with its path.

    ``validators`` adds checks for kinds that are not local (keyed by kind). An empty list
    means the section is usable.
    """
    extra = dict(validators or {})
    if not isinstance(spec, Mapping):
        return [f"{root}: must be a mapping of model names to settings"]
    problems: list[str] = []
    for name, entry in spec.items():
        path = f"{root}.{name}"
        if not isinstance(entry, Mapping):
            problems.append(f"{path}: must be a mapping")
            continue
        kind = entry.get("kind")
        if kind in LOCAL_KINDS:
            problems.extend(_validate_local(path, entry))
        elif kind in extra:
            problems.extend(extra[kind](path, entry))
        else:
            known = sorted([*LOCAL_KINDS, *extra])
            what = "required" if kind is None else f"unknown kind {kind!r}"
            problems.append(f"{path}.kind: {what}; known: {known}")
    return problems


def training_params(entry: Mapping[str, Any]) -> TrainingParams:
    """The training parameters of a (validated) local model entry."""
    preset = LOCAL_KINDS[entry["kind"]]
    return TrainingParams(
        features=dict(entry.get("features") or preset.features),
        c=float(entry.get("c", preset.c)),
        calibration=str(entry.get("calibration", "temperature")),
        cv_folds=int(entry.get("cv_folds", 3)),
        seed=int(entry.get("seed", 0)),
    )


def train_path(entry: Mapping[str, Any], app_dir: Path) -> Path:
    """The training CSV of a local model entry, resolved against the app directory."""
    return (app_dir / str(entry["train"])).resolve()


def build_local(
    name: str,
    entry: Mapping[str, Any],
    app_dir: Path,
    *,
    progress: Progress = no_progress,
    force: bool = False,
) -> Model:
    """Train (or reuse) and load one local model."""
    from sluice.models.local import LocalClassifier

    directory, _ = ensure_artifact(
        name,
        train_path(entry, app_dir),
        training_params(entry),
        models_dir(app_dir),
        progress=progress,
        force=force,
    )
    return LocalClassifier.from_artifact(
        name, directory, price_per_call=float(entry.get("price_per_call", 0.0))
    )


def build_models(
    spec: Mapping[str, Any],
    app_dir: Path,
    *,
    builders: Mapping[str, Builder] | None = None,
    validators: Mapping[str, Validator] | None = None,
    progress: Progress = no_progress,
) -> dict[str, Model]:
    """Build every model of a ``models:`` section, training local ones when needed.

    Raises :class:`ConfigError` listing every problem when the section does not validate.
    """
    extra_builders = dict(builders or {})
    known = {kind: validators[kind] for kind in extra_builders if validators and kind in validators}
    known.update({kind: _no_checks for kind in extra_builders if kind not in known})
    problems = validate_models(spec, validators=known)
    if problems:
        raise ConfigError("invalid models section", problems)
    models: dict[str, Model] = {}
    for name, entry in spec.items():
        kind = entry["kind"]
        if kind in LOCAL_KINDS:
            models[name] = build_local(name, entry, app_dir, progress=progress)
        else:
            models[name] = extra_builders[kind](name, entry, app_dir)
    return models


def _no_checks(path: str, entry: Mapping[str, Any]) -> list[str]:
    del path, entry
    return []
