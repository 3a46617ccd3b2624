"""The triage app's reply drafting template loads and renders with the app's own data."""

from __future__ import annotations

import csv
from pathlib import Path

import jsonschema

from sluice.prompts import load_prompts
from sluice.retrieval import load_templates

TRIAGE = Path(__file__).resolve().parents[2] / "examples" / "triage"


def test_the_draft_reply_template_renders_a_real_ticket() -> None:
    """A replayed ticket, the KB reply for its intent and three resolved tickets of the
    training data render into a prompt that carries all of them, and the schema takes a
    well-formed draft."""
    template = load_prompts(TRIAGE)["draft_reply"]
    with (TRIAGE / "data" / "replay.csv").open(newline="") as file:
        ticket = next(csv.DictReader(file))
    intent = ticket["category"]
    kb = load_templates(TRIAGE / "kb" / "templates.yaml")
    with (TRIAGE / "data" / "train.csv").open(newline="") as file:
        similar = [row for row in csv.DictReader(file) if row["category"] == intent][:3]
    examples = [
        {"text": row["text"], "intent": intent, "resolution": kb[intent], "score": 0.8}
        for row in similar
    ]
    rendered = template.render(
        {"ticket": ticket["text"], "intent": intent, "kb_reply": kb[intent], "examples": examples}
    )
    user = rendered.messages[-1]["content"]
    assert [m["role"] for m in rendered.messages] == ["system", "user"]
    assert ticket["text"] in user
    assert kb[intent] in user
    assert similar[0]["text"] in user
    assert "{{" not in user
    assert rendered.model is None  # the step names its models: the drafter group
    assert rendered.template_id == template.id
    assert rendered.output_schema is not None
    draft = {"reply": "Your card is on its way.", "needs_review": False, "reason": ""}
    jsonschema.validate(draft, rendered.output_schema)
    assert rendered.estimated_input_tokens() < 1000


def test_examples_default_to_none() -> None:
    """Without retrieved tickets the template still renders, with an empty list."""
    template = load_prompts(TRIAGE)["draft_reply"]
    rendered = template.render({"ticket": "hi", "intent": "card_arrival", "kb_reply": "ok"})
    assert rendered.messages[-1]["content"].rstrip().endswith("[]")
