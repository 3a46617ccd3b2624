"""Labelled text data: reading and writing ``text,category`` CSVs, and seeded stratified splits.

The reference app's train / validation / replay files are produced by :func:`write_splits`, so
anyone can regenerate them byte for byte from the source CSV and the seed.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sluice.errors import ConfigError

#: Column names of every labelled CSV Sluice reads or writes.
TEXT_COLUMN = "text"
LABEL_COLUMN = "category"


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text."""

    text: str
    label: str


def read_examples(path: Path) -> list[Example]:
    """Read a ``text,category`` CSV; raise :class:`ConfigError` when it cannot be used."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            if TEXT_COLUMN not in fields or LABEL_COLUMN not in fields:
                raise ConfigError(
                    f"{path}: expected columns {TEXT_COLUMN!r} and {LABEL_COLUMN!r}, got {fields}"
                )
            rows = [Example(row[TEXT_COLUMN], row[LABEL_COLUMN]) for row in reader]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read labelled data: {exc}") from exc
    if not rows:
        raise ConfigError(f"{path}: no rows")
    return rows


def write_examples(path: Path, examples: Sequence[Example]) -> None:
    """Write examples as a ``text,category`` CSV with ``\\n`` line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([TEXT_COLUMN, LABEL_COLUMN])
        writer.writerows([example.text, example.label] for example in examples)


def stratified_split(
    examples: Sequence[Example], fractions: Mapping[str, float], *, seed: int
) -> dict[str, list[Example]]:
    """Split examples into named parts, stratified by label.

    ``fractions`` maps every part but the remainder to its share (``{"validation": 0.15,
    "replay": 0.10}``); what is left goes to ``"train"``. Each label's examples are shuffled
    with their own seeded generator and cut by rounding, so every part holds every label in
    about the same proportion and the result depends only on the data and the seed. Parts keep
    the source order, which keeps diffs of regenerated files small.
    """
    if "train" in fractions:
        raise ValueError("'train' is the remainder and takes no fraction")
    if any(share <= 0 for share in fractions.values()) or sum(fractions.values()) >= 1:
        raise ValueError("fractions must be positive and sum to less than 1")
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        by_label[example.label].append(index)
    assignment: dict[int, str] = {}
    for label in sorted(by_label):
        indices = list(by_label[label])
        random.Random(f"{seed}:{label}").shuffle(indices)
        start = 0
        for part, share in fractions.items():
            count = round(len(indices) * share)
            for index in indices[start : start + count]:
                assignment[index] = part
            start += count
        for index in indices[start:]:
            assignment[index] = "train"
    parts: dict[str, list[Example]] = {"train": [], **{part: [] for part in fractions}}
    for index, example in enumerate(examples):
        parts[assignment[index]].append(example)
    return parts


def write_splits(
    source: Path,
    out_dir: Path,
    *,
    validation: float = 0.15,
    replay: float = 0.10,
    seed: int = 77,
) -> dict[str, Path]:
    """Split ``source`` into ``train.csv``, ``validation.csv`` and ``replay.csv`` in ``out_dir``.

    Returns the written paths by part name. Deterministic for a given source and seed.
    """
    parts = stratified_split(
        read_examples(source), {"validation": validation, "replay": replay}, seed=seed
    )
    paths: dict[str, Path] = {}
    for name, examples in parts.items():
        path = out_dir / f"{name}.csv"
        write_examples(path, examples)
        paths[name] = path
    return paths
