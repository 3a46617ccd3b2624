"""Trained classifier heads on disk: content-addressed, written atomically, loaded lazily.

An artifact lives in ``<models_dir>/<name>-<key>/`` where ``key`` hashes the training data,
the training parameters and the training code's version, so a change to any of them trains
a new artifact and an unchanged one is reused. Layout::

    meta.json          labels, blocks, weights, temperature, parameters, metrics (written last)
    head.npz           one coefficient matrix per feature block, and the intercepts
    vectorizers.pkl    the fitted TF-IDF vectorizers (only when the features use them)

A directory without ``meta.json`` is an interrupted write and is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: Bumped whenever the on-disk layout changes, which invalidates every cached artifact.
ARTIFACT_FORMAT = 1
META_FILE = "meta.json"


class ArtifactError(ConfigError):
    """A model artifact is missing, incomplete or unreadable."""


@dataclass(slots=True)
class TrainedHead:
    """A fitted linear head over a feature stack, with its calibration.

    ``coefs[i]`` has shape ``(len(labels), width of block i)`` and already includes the block's
    weight; scores are ``sum(X_i @ coefs[i].T) + intercept`` and probabilities
    ``softmax(scores / temperature)``.
    """

    labels: list[str]
    weights: dict[str, float]
    coefs: list[NDArray[np.float32]]
    intercept: NDArray[np.float32]
    temperature: float
    vectorizers: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_key(data_digest: str, params: Mapping[str, Any], code_version: str) -> str:
    """Short content hash of (training data, parameters, code version)."""
    payload = json.dumps(
        {"data": data_digest, "params": params, "code": code_version, "format": ARTIFACT_FORMAT},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` holds a fully written artifact."""
    return (directory / META_FILE).is_file()


def save_head(directory: Path, head: TrainedHead) -> None:
    """Write ``head`` into ``directory`` atomically (a sibling temp dir renamed into place)."""
    import numpy as np

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        arrays = {
            f"coef_{block}": coef for block, coef in zip(head.weights, head.coefs, strict=True)
        }
        np.savez(staging / "head.npz", intercept=head.intercept, **arrays)  # type: ignore[arg-type]  # numpy fears **arrays fill allow_pickle
        if head.vectorizers:
            with (staging / "vectorizers.pkl").open("wb") as handle:
                pickle.dump(head.vectorizers, handle, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {
            **head.meta,
            "format": ARTIFACT_FORMAT,
            "labels": head.labels,
            "blocks": list(head.weights),
            "weights": head.weights,
            "temperature": head.temperature,
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if directory.exists():
            # Another process finished the same artifact first; identical content, keep theirs.
            shutil.rmtree(staging)
            return
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_head(directory: Path) -> TrainedHead:
    """Read an artifact written by :func:`save_head`."""
    import numpy as np

    if not is_complete(directory):
        raise ArtifactError(f"{directory}: no complete model artifact here")
    try:
        meta = json.loads((directory / META_FILE).read_text())
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError(f"{directory}: artifact format {meta.get('format')} unsupported")
        # JSON objects are written with sorted keys; "blocks" keeps the stacking order.
        weights = {str(block): float(meta["weights"][block]) for block in meta["blocks"]}
        with np.load(directory / "head.npz") as arrays:
            coefs = [np.asarray(arrays[f"coef_{block}"]) for block in weights]
            intercept = np.asarray(arrays["intercept"])
        vectorizers: dict[str, Any] = {}
        pickled = directory / "vectorizers.pkl"
        if pickled.exists():
            with pickled.open("rb") as handle:
                # Written by save_head into the app's own model directory, never fetched.
                vectorizers = pickle.load(handle)  # noqa: S301 - our own artifact, never fetched
    except (OSError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        raise ArtifactError(f"{directory}: unreadable model artifact: {exc}") from exc
    return TrainedHead(
        labels=list(meta["labels"]),
        weights=weights,
        coefs=coefs,
        intercept=intercept,
        temperature=float(meta["temperature"]),
        vectorizers=vectorizers,
        meta=meta,
    )
