"""Bulk precompute of an index, and the resolved-ticket rows of the triage app.

Embedding is the expensive part of a build (MiniLM embeds a few hundred texts a second on
two cores), so rows are embedded in batches with a progress callback, and the build can be
run ahead of time by ``sluice index build`` and loaded at start-up instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import yaml

from sluice.models.splits import Example
from sluice.retrieval.embedder import Embedder
from sluice.retrieval.errors import RetrievalError
from sluice.retrieval.index import DEFAULT_MAX_ITEMS, IndexItem, VectorIndex

#: Called after each batch with (rows done, rows in total).
Progress = Callable[[int, int], None]


def build_index(
    rows: Iterable[IndexItem],
    embedder: Embedder,
    *,
    batch_size: int = 256,
    name: str = "index",
    max_items: int = DEFAULT_MAX_ITEMS,
    progress: Progress | None = None,
) -> VectorIndex:
    """Embed ``rows`` in batches of ``batch_size`` into a new index.

    A repeated id keeps its last row (upsert semantics), so a source with duplicates still
    builds. ``progress`` is called after every batch.
    """
    if batch_size < 1:
        raise RetrievalError(f"batch_size must be at least 1, got {batch_size}")
    items = list(rows)
    if len(items) > max_items:
        raise RetrievalError(f"index {name!r}: {len(items)} rows exceed max_items={max_items}")
    index = VectorIndex(embedder, name=name, max_items=max_items)
    total = len(items)
    for start in range(0, total, batch_size):
        batch = items[start : start + batch_size]
        index.upsert(batch, embedder.embed([item.text for item in batch]))
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return index


def ticket_id(example: Example) -> str:
    """A stable id for a labelled text: the same row always maps to the same id.

    Content-derived ids make rebuilds and deltas idempotent: upserting a file twice changes
    nothing, and an exact duplicate row collapses into one item.
    """
    digest = hashlib.sha256(f"{example.label}\x00{example.text}".encode()).hexdigest()
    return f"t-{digest[:16]}"


def load_templates(path: Path, intents: Sequence[str] | None = None) -> dict[str, str]:
    """Read an ``intent: reply template`` YAML mapping; check it covers every intent given."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RetrievalError(f"{path}: cannot read templates: {exc}") from exc
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise RetrievalError(f"{path}: expected a mapping of intent name to template text")
    templates = {k: " ".join(v.split()) for k, v in raw.items()}
    missing = sorted(set(intents or ()) - set(templates))
    if missing:
        raise RetrievalError(f"{path}: no template for {len(missing)} intents", missing)
    return templates


def resolved_tickets(examples: Iterable[Example], templates: Mapping[str, str]) -> list[IndexItem]:
    """Turn labelled texts into resolved tickets, each resolved by its intent's template."""
    items: list[IndexItem] = []
    missing: set[str] = set()
    for example in examples:
        resolution = templates.get(example.label)
        if resolution is None:
            missing.add(example.label)
            continue
        items.append(IndexItem(ticket_id(example), example.text, example.label, resolution))
    if missing:
        raise RetrievalError(f"no resolution template for {len(missing)} intents", sorted(missing))
    return items
