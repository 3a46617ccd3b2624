"""Resolved tickets for the triage app: templates, stable ids, warm-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_warm_up_runs_embed_and_search(
    wordllama: FeatureEmbedder, tickets: list[IndexItem]
) -> None:
    """warm_up embeds and searches once, reporting both timings."""
    report = warm_up(build_index(tickets[:50], wordllama))
    assert report.embed_ms >= 0
    assert report.search_ms >= 0
