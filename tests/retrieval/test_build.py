"""Resolved tickets for the triage app: templates, stable ids, warm-up."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from sluice.models.splits import Example
from sluice.retrieval import (
    FeatureEmbedder,
    IndexItem,
    RetrievalError,
    build_index,
    load_templates,
    resolved_tickets,
    ticket_id,
    warm_up,
)
from tests.retrieval.conftest import DATA, TEMPLATES


class TestTemplates:
    def test_every_intent_has_a_template(self) -> None:
        """The triage knowledge base covers all 77 BANKING77 intents with a short reply."""
        intents = json.loads((DATA / "banking77" / "categories.json").read_text())
        templates = load_templates(TEMPLATES, intents)
        assert len(templates) == 77
        assert all(20 < len(text) < 400 for text in templates.values())

    def test_missing_intents_are_listed(self, tmp_path: Path) -> None:
        """A template file that misses intents names every one of them."""
        path = tmp_path / "t.yaml"
        path.write_text("card_arrival: Cards take a week.\n")
        with pytest.raises(RetrievalError) as caught:
            load_templates(path, ["card_arrival", "age_limit", "pin_blocked"])
        assert caught.value.problems == ["age_limit", "pin_blocked"]

    def test_not_a_mapping(self, tmp_path: Path) -> None:
        """A template file that is not intent -> text is refused."""
        path = tmp_path / "t.yaml"
        path.write_text("- a\n- b\n")
        with pytest.raises(RetrievalError, match="mapping"):
            load_templates(path)


class TestTickets:
    def test_ids_are_content_derived(self, templates: dict[str, str]) -> None:
        """The same row always gets the same id; another intent or text gets another."""
        a = Example("my card is late", "card_arrival")
        assert ticket_id(a) == ticket_id(Example("my card is late", "card_arrival"))
        assert ticket_id(a) != ticket_id(Example("my card is late", "card_delivery_estimate"))
        (item,) = resolved_tickets([a], templates)
        assert item.resolution == templates["card_arrival"]

    def test_duplicates_collapse(
        self, wordllama: FeatureEmbedder, templates: dict[str, str]
    ) -> None:
        """A duplicated row becomes one item in the index."""
        rows = resolved_tickets([Example("lost card", "lost_or_stolen_card")] * 3, templates)
        assert len(build_index(rows, wordllama)) == 1

    def test_unknown_intent(self, templates: dict[str, str]) -> None:
        """A row whose intent has no template is an error naming the intent."""
        with pytest.raises(RetrievalError, match="no resolution template"):
            resolved_tickets([Example("hi", "greeting")], templates)


class CountingEmbedder:
    """A real embedder that also records each call's texts and how long it took."""

    def __init__(self, inner: FeatureEmbedder) -> None:
        self.inner = inner
        self.calls: list[tuple[list[str], float]] = []
        self.name, self.version, self.dim, self.slow = (
            inner.name, inner.version, inner.dim, inner.slow
        )  # fmt: skip

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed with the real embedder, timing the call."""
        started = time.perf_counter()
        vectors = self.inner.embed(texts)
        self.calls.append((list(texts), (time.perf_counter() - started) * 1000))
        return vectors


def test_warm_up_runs_embed_and_search(
    wordllama: FeatureEmbedder, tickets: list[IndexItem]
) -> None:
    """warm_up embeds one text and searches once per round; the reported embed time covers
    the first embedding call and the search time is spent after it."""
    embedder = CountingEmbedder(wordllama)
    index = build_index(tickets[:50], embedder)
    embedder.calls.clear()  # the build's own calls
    report = warm_up(index, rounds=3)
    assert [len(texts) for texts, _ in embedder.calls] == [1, 1, 1]
    assert report.embed_ms >= embedder.calls[0][1]  # the timed interval encloses the call
    assert report.search_ms > 0
