"""Saving an index to a directory and loading it back, refusing vectors from another embedder.

An index directory holds three files::

    meta.json      {"format": 1, "name", "embedder": {"name", "version", "dim"}, "count",
                    "generation", "vectors_sha256"}
    vectors.npy    float32 (count, dim), unit rows, no pickles
    items.jsonl    one {"id", "text", "intent", "resolution"} per line, in row order

A save writes a sibling temporary directory and swaps it in with renames, so a reader sees
the old index or the new one, never a mixture; the checksum catches a directory assembled by
hand from two builds. The embedder is checked before the vectors are read: an index built by
another model lives in another vector space, and searching it would return confident nonsense.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import orjson

from sluice.models.artifacts import file_digest
from sluice.retrieval.embedder import Embedder
from sluice.retrieval.errors import EmbedderMismatchError, IndexFormatError
from sluice.retrieval.index import DEFAULT_MAX_ITEMS, IndexItem, VectorIndex

#: Layout version of index directories; a loader refuses newer formats.
FORMAT = 1
META_FILE = "meta.json"
VECTORS_FILE = "vectors.npy"
ITEMS_FILE = "items.jsonl"


def embedder_identity(embedder: Embedder) -> dict[str, Any]:
    """The fields that pin an embedder's vector space."""
    return {"name": embedder.name, "version": embedder.version, "dim": embedder.dim}


def save_index(index: VectorIndex, directory: Path) -> Path:
    """Write ``index`` to ``directory`` atomically (replacing what was there); return it."""
    import numpy as np

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    items = index.items()
    vectors = index.vectors()
    np.save(staging / VECTORS_FILE, vectors, allow_pickle=False)
    with (staging / ITEMS_FILE).open("wb") as handle:
        for item in items:
            handle.write(orjson.dumps(item.as_dict()))
            handle.write(b"\n")
    meta = {
        "format": FORMAT,
        "name": index.name,
        "embedder": embedder_identity(index.embedder),
        "count": len(items),
        "generation": index.generation,
        "vectors_sha256": file_digest(staging / VECTORS_FILE),
    }
    (staging / META_FILE).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def read_meta(directory: Path) -> dict[str, Any]:
    """The metadata of the index in ``directory``, checked for a known format."""
    path = Path(directory) / META_FILE
    try:
        meta: dict[str, Any] = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise IndexFormatError(
            f"no index at {directory} ({META_FILE} missing); build it with `sluice index build`"
        ) from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise IndexFormatError(f"{path}: unreadable index metadata: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise IndexFormatError(
            f"{path}: index format {meta.get('format')!r}, this version reads format {FORMAT}"
        )
    return meta


def load_index(
    directory: Path, embedder: Embedder, *, max_items: int = DEFAULT_MAX_ITEMS
) -> VectorIndex:
    """Load the index saved in ``directory`` for use with ``embedder``.

    Raises :class:`EmbedderMismatchError` when the index was built by another embedder and
    :class:`IndexFormatError` when the directory is incomplete or inconsistent.
    """
    import numpy as np

    directory = Path(directory)
    meta = read_meta(directory)
    built_with = meta.get("embedder", {})
    expected = embedder_identity(embedder)
    if built_with != expected:
        raise EmbedderMismatchError(
            f"index {meta.get('name')!r} at {directory} was built with embedder "
            f"{built_with.get('name')} ({built_with.get('version')}, {built_with.get('dim')}-d), "
            f"but this app embeds with {expected['name']} ({expected['version']}, "
            f"{expected['dim']}-d); rebuild it with `sluice index build`"
        )
    vectors_path = directory / VECTORS_FILE
    try:
        if file_digest(vectors_path) != meta.get("vectors_sha256"):
            raise IndexFormatError(f"{vectors_path}: checksum differs from {META_FILE}")
        vectors = np.load(vectors_path, allow_pickle=False)
        lines = (directory / ITEMS_FILE).read_bytes().splitlines()
    except OSError as exc:
        raise IndexFormatError(f"{directory}: incomplete index: {exc}") from exc
    items = [IndexItem(**orjson.loads(line)) for line in lines]
    count = meta.get("count")
    if not (len(items) == count == vectors.shape[0]) or vectors.dtype != np.float32:
        raise IndexFormatError(
            f"{directory}: {len(items)} items, {vectors.shape[0]} {vectors.dtype} vectors, "
            f"meta says {count}"
        )
    index = VectorIndex(embedder, name=str(meta.get("name", directory.name)), max_items=max_items)
    index.add(items, vectors)
    # Keep the saved generation so retrieval-cache keys stay valid across a restart.
    index.generation = max(index.generation, int(meta.get("generation", 0)))
    return index
