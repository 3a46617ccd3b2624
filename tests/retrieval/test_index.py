"""The vector index: exact top-k against a known answer, deltas, bounds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from sluice.models.splits import Example
from sluice.retrieval import (
    FeatureEmbedder,
    IndexFullError,
    IndexItem,
    RetrievalError,
    VectorIndex,
    build_index,
)


@pytest.fixture(scope="module")
def index(wordllama: FeatureEmbedder, tickets: list[IndexItem]) -> VectorIndex:
    """The 616-ticket index over wordllama vectors."""
    return build_index(tickets, wordllama, batch_size=200, name="tickets")


class TestExactSearch:
    def test_matches_brute_force_reference(
        self, index: VectorIndex, wordllama: FeatureEmbedder, queries: list[Example]
    ) -> None:
        """Top-5 ids and scores equal scikit-learn's exact cosine neighbours on real rows."""
        vectors = index.vectors()
        ids = [item.id for item in index.items()]
        reference = NearestNeighbors(n_neighbors=5, metric="cosine", algorithm="brute")
        reference.fit(vectors)
        q = wordllama.embed([e.text for e in queries])
        distances, rows = reference.kneighbors(q)
        found = index.search_vectors(q, 5)
        for got, want_rows, want_dist in zip(found, rows, distances, strict=True):
            assert [n.item.id for n in got] == [ids[r] for r in want_rows]
            assert np.allclose([n.score for n in got], 1 - want_dist, atol=1e-5)

    def test_single_query_equals_batch(self, index: VectorIndex, queries: list[Example]) -> None:
        """search(text) returns what the batch path returns for the same text."""
        text = queries[0].text
        assert index.search(text, 3) == index.search_vectors(index.embedder.embed([text]), 3)[0]

    def test_neighbours_share_the_intent(self, index: VectorIndex, queries: list[Example]) -> None:
        """Most unseen validation tickets find a neighbour of their own intent first."""
        hits = sum(index.search(e.text, 1)[0].item.intent == e.label for e in queries)
        assert hits / len(queries) >= 0.6

    def test_known_geometry(self, wordllama: FeatureEmbedder) -> None:
        """On hand-made vectors the order and scores are exactly the cosines."""
        small = VectorIndex(wordllama, name="toy")
        basis = np.eye(256, dtype=np.float32)[:3]
        small.add([IndexItem(str(n), f"t{n}") for n in range(3)], basis)
        query = np.zeros(256, dtype=np.float32)
        query[:3] = [0.1, 0.8, 0.6]
        found = small.search_vector(query, 5)
        assert [n.item.id for n in found] == ["1", "2", "0"]
        norm = np.linalg.norm([0.1, 0.8, 0.6])
        assert [n.score for n in found] == pytest.approx([0.8 / norm, 0.6 / norm, 0.1 / norm])

    def test_empty_index_and_bad_k(self, wordllama: FeatureEmbedder) -> None:
        """An empty index finds nothing; k below one is an error."""
        empty = VectorIndex(wordllama)
        assert empty.search("anything", 3) == []
        with pytest.raises(RetrievalError, match="k must be at least 1"):
            empty.search("anything", 0)


class TestDeltas:
    def _fresh(self, wordllama: FeatureEmbedder, tickets: list[IndexItem]) -> VectorIndex:
        return build_index(tickets[:100], wordllama, name="delta")

    def test_add_refuses_existing_ids(
        self, wordllama: FeatureEmbedder, tickets: list[IndexItem]
    ) -> None:
        """add() never overwrites: an existing id is an error and nothing changes."""
        index = self._fresh(wordllama, tickets)
        before = index.generation
        with pytest.raises(RetrievalError, match="already present"):
            index.add([tickets[0]])
        assert len(index) == 100
        assert index.generation == before

    def test_upsert_replaces_in_place_and_adds(
        self, wordllama: FeatureEmbedder, tickets: list[IndexItem]
    ) -> None:
        """An upserted text is found under its id; new ids are appended; generation grows."""
        index = self._fresh(wordllama, tickets)
        before = index.generation
        changed = IndexItem(
            tickets[5].id, "I want to close my account for good", "terminate_account"
        )
        added, replaced = index.upsert([changed, tickets[150]])
        assert (added, replaced) == (1, 1)
        assert len(index) == 101
        assert index.get(changed.id) == changed
        assert index.search("close my account permanently", 1)[0].item.id == changed.id
        assert index.generation > before

    def test_delete_keeps_search_exact(
        self, wordllama: FeatureEmbedder, tickets: list[IndexItem], queries: list[Example]
    ) -> None:
        """After deletes, results equal an index built from the remaining items only."""
        index = self._fresh(wordllama, tickets)
        gone = [tickets[n].id for n in (0, 10, 50, 99)] + ["no-such-id"]
        assert index.delete(gone) == 4
        assert all(item_id not in index for item_id in gone)
        rebuilt = build_index(
            [t for t in tickets[:100] if t.id not in gone], wordllama, name="rebuilt"
        )
        q = wordllama.embed([e.text for e in queries[:20]])
        got = [[n.item.id for n in row] for row in index.search_vectors(q, 5)]
        want = [[n.item.id for n in row] for row in rebuilt.search_vectors(q, 5)]
        assert got == want

    def test_bound_is_enforced(self, wordllama: FeatureEmbedder, tickets: list[IndexItem]) -> None:
        """Growing past max_items raises IndexFullError and leaves the index unchanged."""
        index = build_index(tickets[:10], wordllama, max_items=12)
        with pytest.raises(IndexFullError, match="at most 12"):
            index.upsert(tickets[10:13])
        assert len(index) == 10
        index.upsert(tickets[10:12])
        assert len(index) == 12
        with pytest.raises(RetrievalError, match="exceed max_items"):
            build_index(tickets[:13], wordllama, max_items=12)

    def test_growth_past_initial_capacity(
        self, wordllama: FeatureEmbedder, tickets: list[IndexItem]
    ) -> None:
        """Items added one batch at a time past the first allocation are all searchable."""
        vectors = np.random.default_rng(7).normal(size=(2500, 256)).astype(np.float32)
        index = VectorIndex(wordllama, max_items=3000)
        for start in range(0, 2500, 700):
            chunk = range(start, min(start + 700, 2500))
            index.add([IndexItem(f"r{n}", "") for n in chunk], vectors[chunk.start : chunk.stop])
        assert len(index) == 2500
        assert index.search_vector(vectors[2222], 1)[0].item.id == "r2222"


def test_build_reports_progress(wordllama: FeatureEmbedder, tickets: list[IndexItem]) -> None:
    """build_index calls progress after each batch, ending at the total."""
    seen: list[tuple[int, int]] = []
    build_index(tickets[:250], wordllama, batch_size=100, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(100, 250), (200, 250), (250, 250)]


def test_minilm_neighbours(
    minilm: FeatureEmbedder, tickets: list[IndexItem], queries: list[Example]
) -> None:
    """MiniLM finds a same-intent neighbour first for most unseen validation tickets."""
    # 4 tickets for each of 20 intents keeps the encoder's share of the suite small.
    intents = sorted({t.intent for t in tickets})[:20]
    counts: dict[str, int] = {}
    subset = []
    for ticket in tickets:
        if ticket.intent in intents and counts.get(ticket.intent, 0) < 4:
            counts[ticket.intent] = counts.get(ticket.intent, 0) + 1
            subset.append(ticket)
    index = build_index(subset, minilm, batch_size=64)
    probes = [e for e in queries if e.label in intents]
    found = index.search_vectors(minilm.embed([e.text for e in probes]), 1)
    hits = sum(row[0].item.intent == e.label for row, e in zip(found, probes, strict=True))
    assert hits / len(probes) >= 0.7
