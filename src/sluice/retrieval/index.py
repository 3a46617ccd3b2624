"""An in-memory vector index with exact cosine top-k, deltas and a size bound.

Vectors are unit length, so cosine similarity is a dot product and one matrix-vector product
scores every item. Brute force is exact and, for the index sizes a support desk has (tens of
thousands of resolved tickets), takes well under a few milliseconds on two cores
(``bench/retrieval.py``); an approximate index would only pay off at millions of rows.

Rows live in one preallocated float32 matrix that grows by doubling up to ``max_items``.
Deleting moves the last row into the hole, so the live rows stay contiguous and a search
never skips tombstones. A lock serialises mutations and searches: a search holds it for a
millisecond, and a delta must never be seen half applied.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluice.retrieval.blas import blas_threads
from sluice.retrieval.embedder import Embedder
from sluice.retrieval.errors import IndexFullError, RetrievalError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: Default bound on the number of items of one index.
DEFAULT_MAX_ITEMS = 100_000
_MIN_CAPACITY = 1024


@dataclass(frozen=True, slots=True)
class IndexItem:
    """One resolved ticket: its text, the intent it was filed under and how it was resolved."""

    id: str
    text: str
    intent: str = ""
    resolution: str = ""

    def as_dict(self) -> dict[str, str]:
        """The item as a JSON object."""
        return {
            "id": self.id,
            "text": self.text,
            "intent": self.intent,
            "resolution": self.resolution,
        }


@dataclass(frozen=True, slots=True)
class Neighbour:
    """An item found by a search, with its cosine similarity to the query (-1..1)."""

    item: IndexItem
    score: float

    def as_dict(self) -> dict[str, Any]:
        """The neighbour as a JSON object: the item's fields plus ``score``."""
        return {**self.item.as_dict(), "score": round(self.score, 6)}


def unit_rows(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Return ``matrix`` as contiguous float32 with every non-zero row scaled to length one.

    Rows already of unit length (within float32 rounding) are left bit for bit as they are, so
    saving and loading an index never drifts its vectors.
    """
    import numpy as np

    out = np.array(matrix, dtype=np.float32, copy=True, order="C", ndmin=2)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[(norms == 0) | (np.abs(norms - 1.0) < 1e-5)] = 1.0
    out /= norms
    return out


class VectorIndex:
    """Items and their unit vectors, searched by exact cosine similarity.

    ``embedder`` turns texts (items added without vectors, and queries) into vectors;
    ``generation`` grows with every change, so caches keyed on it never serve results from
    before a delta. ``blas_threads`` caps the BLAS threads of a search (1 by default, see
    :mod:`sluice.retrieval.blas`; ``None`` leaves BLAS alone).
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        name: str = "index",
        max_items: int = DEFAULT_MAX_ITEMS,
        blas_threads: int | None = 1,
    ) -> None:
        import numpy as np

        if max_items < 1:
            raise RetrievalError(f"index {name!r}: max_items must be at least 1, got {max_items}")
        self.name = name
        self.embedder = embedder
        self.max_items = max_items
        self.generation = 0
        self.blas_threads = blas_threads
        self._matrix: NDArray[np.float32] = np.zeros(
            (min(_MIN_CAPACITY, max_items), embedder.dim), dtype=np.float32
        )
        self._items: list[IndexItem] = []
        self._rows: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def get(self, item_id: str) -> IndexItem | None:
        """The item stored under ``item_id``, if any."""
        with self._lock:
            row = self._rows.get(item_id)
            return None if row is None else self._items[row]

    def items(self) -> list[IndexItem]:
        """Every item, in row order (a copy)."""
        with self._lock:
            return list(self._items)

    def vectors(self) -> NDArray[np.float32]:
        """Every item's vector, in row order (a copy)."""
        with self._lock:
            return self._matrix[: len(self._items)].copy()

    # -- deltas ---------------------------------------------------------------------------------

    def add(self, items: Sequence[IndexItem], vectors: NDArray[np.float32] | None = None) -> None:
        """Insert new items; an id already present (or repeated in ``items``) is an error.

        Without ``vectors`` the texts are embedded first, outside the lock.
        """
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise RetrievalError(f"index {self.name!r}: duplicate ids in one add")
        matrix = self._prepare(items, vectors)
        with self._lock:
            present = [item_id for item_id in ids if item_id in self._rows]
            if present:
                raise RetrievalError(
                    f"index {self.name!r}: ids already present: {present[:5]} (use upsert)"
                )
            self._append(items, matrix)

    def upsert(
        self, items: Sequence[IndexItem], vectors: NDArray[np.float32] | None = None
    ) -> tuple[int, int]:
        """Insert new items and replace existing ones in place; return ``(added, replaced)``.

        When an id repeats inside ``items``, the last one wins.
        """
        latest = {item.id: n for n, item in enumerate(items)}
        keep = sorted(latest.values())
        items = [items[n] for n in keep]
        matrix = self._prepare(items, None if vectors is None else vectors[keep])
        with self._lock:
            fresh = [n for n, item in enumerate(items) if item.id not in self._rows]
            if len(self._items) + len(fresh) > self.max_items:
                raise self._full(len(fresh))
            for n, item in enumerate(items):
                row = self._rows.get(item.id)
                if row is not None:
                    self._items[row] = item
                    self._matrix[row] = matrix[n]
            self._append([items[n] for n in fresh], matrix[fresh])
            self.generation += 1
        return len(fresh), len(items) - len(fresh)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove the items with these ids (unknown ids are ignored); return how many went."""
        removed = 0
        with self._lock:
            for item_id in ids:
                row = self._rows.pop(item_id, None)
                if row is None:
                    continue
                last = len(self._items) - 1
                if row != last:
                    # Move the last row into the hole so live rows stay contiguous.
                    moved = self._items[last]
                    self._items[row] = moved
                    self._matrix[row] = self._matrix[last]
                    self._rows[moved.id] = row
                self._items.pop()
                removed += 1
            if removed:
                self.generation += 1
        return removed

    def _prepare(
        self, items: Sequence[IndexItem], vectors: NDArray[np.float32] | None
    ) -> NDArray[np.float32]:
        if vectors is None:
            vectors = self.embedder.embed([item.text for item in items])
        if vectors.ndim != 2 or vectors.shape != (len(items), self.embedder.dim):
            raise RetrievalError(
                f"index {self.name!r}: vectors of shape {vectors.shape} for {len(items)} items "
                f"of width {self.embedder.dim}"
            )
        return unit_rows(vectors)

    def _full(self, adding: int) -> IndexFullError:
        return IndexFullError(
            f"index {self.name!r} holds {len(self._items)} of at most {self.max_items} items; "
            f"adding {adding} would exceed the bound (delete items or raise max_items)"
        )

    def _append(self, items: Sequence[IndexItem], matrix: NDArray[np.float32]) -> None:
        import numpy as np

        if not items:
            return
        start = len(self._items)
        end = start + len(items)
        if end > self.max_items:
            raise self._full(len(items))
        if end > self._matrix.shape[0]:
            capacity = min(self.max_items, max(end, 2 * self._matrix.shape[0]))
            grown = np.zeros((capacity, self.embedder.dim), dtype=np.float32)
            grown[:start] = self._matrix[:start]
            self._matrix = grown
        self._matrix[start:end] = matrix
        for offset, item in enumerate(items):
            self._rows[item.id] = start + offset
        self._items.extend(items)
        self.generation += 1

    # -- search ---------------------------------------------------------------------------------

    def search(self, text: str, k: int = 5) -> list[Neighbour]:
        """The ``k`` items most similar to ``text``, best first."""
        return self.search_vectors(self.embedder.embed([text]), k)[0]

    def search_vector(self, vector: NDArray[np.float32], k: int = 5) -> list[Neighbour]:
        """The ``k`` items most similar to one query vector, best first."""
        return self.search_vectors(vector.reshape(1, -1), k)[0]

    def search_vectors(self, queries: NDArray[np.float32], k: int = 5) -> list[list[Neighbour]]:
        """The ``k`` best items for each row of ``queries`` (one matrix product for all)."""
        import numpy as np

        if k < 1:
            raise RetrievalError(f"index {self.name!r}: k must be at least 1, got {k}")
        if queries.ndim != 2 or queries.shape[1] != self.embedder.dim:
            raise RetrievalError(
                f"index {self.name!r}: queries of shape {queries.shape}, "
                f"expected (n, {self.embedder.dim})"
            )
        queries = unit_rows(queries)
        with self._lock:
            count = len(self._items)
            if count == 0:
                return [[] for _ in range(len(queries))]
            with blas_threads(self.blas_threads):
                scores = queries @ self._matrix[:count].T
            k = min(k, count)
            if k < count:
                # argpartition is linear in the item count; only the k winners get sorted.
                top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            else:
                top = np.broadcast_to(np.arange(count), (len(queries), count))
            picked = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-picked, axis=1, kind="stable")
            rows = np.take_along_axis(top, order, axis=1)
            best = np.take_along_axis(picked, order, axis=1)
            return [
                [
                    Neighbour(self._items[int(r)], float(s))
                    for r, s in zip(row_ids, row_scores, strict=True)
                ]
                for row_ids, row_scores in zip(rows, best, strict=True)
            ]

    def __repr__(self) -> str:
        return (
            f"VectorIndex(name={self.name!r}, items={len(self._items)}, "
            f"embedder={self.embedder.name!r}, generation={self.generation})"
        )
