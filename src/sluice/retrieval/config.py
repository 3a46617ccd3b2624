"""The ``indexes`` section of ``sluice.yaml``: which indexes an app has and where they live.

Example::

    indexes:
      tickets:
        embedder: minilm              # or wordllama (faster, slightly worse neighbours)
        path: .sluice/indexes/tickets # default .sluice/indexes/<name>, relative to APP_DIR
        data: data/train.csv          # text,category rows that `sluice index build` embeds
        templates: kb/templates.yaml  # intent -> resolution text
        max_items: 100000

:func:`open_indexes` loads every configured index from disk and warms it, returning the
mapping to wire as ``services["indexes"]`` for the ``retrieve`` step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.retrieval.embedder import EMBEDDERS, embedder_for
from sluice.retrieval.errors import RetrievalError
from sluice.retrieval.index import DEFAULT_MAX_ITEMS, VectorIndex
from sluice.retrieval.persist import load_index
from sluice.retrieval.warmup import warm_up

#: Service name under which steps find the indexes in ``ctx.services``.
INDEXES = "indexes"
_FIELDS = {"embedder", "path", "data", "templates", "max_items"}


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """One configured index; paths are absolute (resolved against the app directory)."""

    name: str
    embedder: str
    path: Path
    data: Path
    templates: Path
    max_items: int = DEFAULT_MAX_ITEMS


def _resolve(app_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else app_dir / path


def parse_indexes(raw: Any, app_dir: Path) -> dict[str, IndexSettings]:
    """Validate the ``indexes`` section; report every problem at once with its path."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RetrievalError("indexes: expected a mapping of index name to settings")
    problems: list[str] = []
    out: dict[str, IndexSettings] = {}
    for name, entry in raw.items():
        where = f"indexes.{name}"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        problems += [f"{where}.{key}: unknown field" for key in sorted(set(entry) - _FIELDS)]
        embedder = entry.get("embedder", "minilm")
        if embedder not in EMBEDDERS:
            problems.append(
                f"{where}.embedder: unknown embedder {embedder!r} (known: minilm, wordllama)"
            )
        max_items = entry.get("max_items", DEFAULT_MAX_ITEMS)
        if not isinstance(max_items, int) or isinstance(max_items, bool) or max_items < 1:
            problems.append(f"{where}.max_items: expected a positive integer")
            max_items = DEFAULT_MAX_ITEMS
        paths = {
            "path": entry.get("path", f".sluice/indexes/{name}"),
            "data": entry.get("data", "data/train.csv"),
            "templates": entry.get("templates", "kb/templates.yaml"),
        }
        for key, value in paths.items():
            if not isinstance(value, str) or not value:
                problems.append(f"{where}.{key}: expected a path")
        if problems:
            continue
        out[str(name)] = IndexSettings(
            name=str(name),
            embedder=str(embedder),
            path=_resolve(app_dir, paths["path"]),
            data=_resolve(app_dir, paths["data"]),
            templates=_resolve(app_dir, paths["templates"]),
            max_items=max_items,
        )
    if problems:
        raise RetrievalError("invalid indexes configuration", problems)
    return out


def open_index(settings: IndexSettings, *, warm: bool = True) -> VectorIndex:
    """Load one configured index from disk, warmed unless ``warm`` is false."""
    index = load_index(settings.path, embedder_for(settings.embedder), max_items=settings.max_items)
    if warm:
        warm_up(index)
    return index


def open_indexes(
    indexes: Mapping[str, IndexSettings], *, warm: bool = True
) -> dict[str, VectorIndex]:
    """Load (and warm) every configured index: the value to wire as ``services["indexes"]``."""
    return {name: open_index(settings, warm=warm) for name, settings in indexes.items()}
