"""Saving and loading indexes: round trip, the wrong-embedder refusal, torn directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from sluice.models.splits import Example
from sluice.retrieval import (
    EmbedderMismatchError,
    FeatureEmbedder,
    IndexFormatError,
    IndexItem,
    VectorIndex,
    build_index,
    load_index,
    read_meta,
    save_index,
)


@pytest.fixture(scope="module")
def index(wordllama: FeatureEmbedder, tickets: list[IndexItem]) -> VectorIndex:
    """A 300-ticket wordllama index."""
    return build_index(tickets[:300], wordllama, name="tickets")


class TestRoundTrip:
    def test_load_returns_the_same_index(
        self,
        tmp_path: Path,
        index: VectorIndex,
        wordllama: FeatureEmbedder,
        queries: list[Example],
    ) -> None:
        """Items, vectors and search results survive a save and load unchanged."""
        path = save_index(index, tmp_path / "tickets")
        loaded = load_index(path, wordllama)
        assert loaded.name == "tickets"
        assert loaded.items() == index.items()
        assert np.array_equal(loaded.vectors(), index.vectors())
        for example in queries[:10]:
            assert loaded.search(example.text, 5) == index.search(example.text, 5)

    def test_meta_records_the_embedder(self, tmp_path: Path, index: VectorIndex) -> None:
        """meta.json names the embedder, the item count and the format."""
        meta = read_meta(save_index(index, tmp_path / "tickets"))
        assert meta["format"] == 1
        assert meta["count"] == 300
        assert meta["embedder"] == {
            "name": "wordllama-l2_supercat",
            "version": index.embedder.version,
            "dim": 256,
        }

    def test_save_replaces_atomically(
        self, tmp_path: Path, index: VectorIndex, wordllama: FeatureEmbedder
    ) -> None:
        """Saving over an existing index replaces it whole and leaves no staging folders."""
        path = tmp_path / "tickets"
        save_index(build_index(index.items()[:5], wordllama, name="tickets"), path)
        save_index(index, path)
        assert len(load_index(path, wordllama)) == 300
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tickets"]


class TestRefusals:
    def test_wrong_embedder_is_refused(
        self, tmp_path: Path, index: VectorIndex, minilm: FeatureEmbedder
    ) -> None:
        """An index built with wordllama will not load for MiniLM, and says how to fix it."""
        path = save_index(index, tmp_path / "tickets")
        with pytest.raises(EmbedderMismatchError) as caught:
            load_index(path, minilm)
        message = str(caught.value)
        assert "built with embedder wordllama-l2_supercat" in message
        assert "all-MiniLM-L6-v2" in message
        assert "sluice index build" in message

    def test_other_weights_version_is_refused(
        self, tmp_path: Path, index: VectorIndex, wordllama: FeatureEmbedder
    ) -> None:
        """The same embedder name with other weights (a package upgrade) is refused too."""
        path = save_index(index, tmp_path / "tickets")
        meta = orjson.loads((path / "meta.json").read_bytes())
        meta["embedder"]["version"] = "wordllama==0.1.0"
        (path / "meta.json").write_bytes(orjson.dumps(meta))
        with pytest.raises(EmbedderMismatchError, match=r"wordllama==0\.1\.0"):
            load_index(path, wordllama)

    def test_missing_index(self, tmp_path: Path, wordllama: FeatureEmbedder) -> None:
        """A directory without an index says to build one."""
        with pytest.raises(IndexFormatError, match="sluice index build"):
            load_index(tmp_path / "nothing", wordllama)

    def test_vectors_from_another_build(
        self, tmp_path: Path, index: VectorIndex, wordllama: FeatureEmbedder
    ) -> None:
        """Vectors swapped in from another build fail the checksum."""
        path = save_index(index, tmp_path / "a")
        other = save_index(build_index(index.items()[:3], wordllama), tmp_path / "b")
        (path / "vectors.npy").write_bytes((other / "vectors.npy").read_bytes())
        with pytest.raises(IndexFormatError, match="checksum"):
            load_index(path, wordllama)

    def test_newer_format(
        self, tmp_path: Path, index: VectorIndex, wordllama: FeatureEmbedder
    ) -> None:
        """An index written by a newer format is refused, not misread."""
        path = save_index(index, tmp_path / "tickets")
        meta = orjson.loads((path / "meta.json").read_bytes())
        meta["format"] = 2
        (path / "meta.json").write_bytes(orjson.dumps(meta))
        with pytest.raises(IndexFormatError, match="format 2"):
            load_index(path, wordllama)
