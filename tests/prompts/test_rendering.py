"""Rendering: values filled in strictly, errors naming each bad variable, JSON for non-strings."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.errors import StepError
from sluice.models.estimate import prompt_tokens
from sluice.prompts import PromptTemplate, TemplateError, load_prompts
from tests.prompts.conftest import WriteTemplates

TEMPLATE = """
    variables:
      ticket: {type: string, max_chars: 20}
      count: integer
      score: number
      urgent: boolean
      tags: array
      customer: object
      tone: {type: string, default: neutral}
      note: {type: string, required: false}
    system: "Tone: {{ tone }}. Note: {{ note }}."
    user: >-
      {{ customer.name }} ({{ customer.address.city }}) wrote {{ ticket }};
      count={{ count }} score={{ score }} urgent={{ urgent }} tags={{ tags }}
      customer={{ customer }}
    params: {temperature: 0.3, max_tokens: 120}
    output_schema: {type: object, properties: {reply: {type: string}}}
"""
VALUES: dict[str, Any] = {
    "ticket": "Where is my card?",
    "count": 3,
    "score": 0.5,
    "urgent": False,
    "tags": ["card", "delivery"],
    "customer": {"name": "Ana", "address": {"city": "Lyon"}},
}


@pytest.fixture
def template(write_templates: WriteTemplates) -> PromptTemplate:
    """The test template, loaded from a file."""
    return load_prompts(write_templates(reply=TEMPLATE))["reply"]


def render_problems(template: PromptTemplate, values: dict[str, Any]) -> list[str]:
    """The problems a render with ``values`` reports."""
    with pytest.raises(TemplateError) as raised:
        template.render(values)
    return raised.value.problems


class TestRendering:
    def test_values_fields_and_json(self, template: PromptTemplate) -> None:
        """Strings go in as they are, nested fields are read, other values are compact JSON."""
        rendered = template.render({**VALUES, "note": "VIP"})
        assert rendered.messages == [
            {"role": "system", "content": "Tone: neutral. Note: VIP."},
            {
                "role": "user",
                "content": "Ana (Lyon) wrote Where is my card?; count=3 score=0.5 urgent=false "
                'tags=["card","delivery"] customer={"name":"Ana","address":{"city":"Lyon"}}',
            },
        ]

    def test_the_rendered_prompt_carries_the_call(self, template: PromptTemplate) -> None:
        """The rendered prompt names its template and version and carries params and schema."""
        rendered = template.render({**VALUES, "note": ""})
        assert rendered.template == "reply"
        assert rendered.version == template.version
        assert rendered.template_id == template.id
        assert rendered.params == {"temperature": 0.3, "max_tokens": 120}
        assert rendered.output_schema == {
            "type": "object",
            "properties": {"reply": {"type": "string"}},
        }
        assert rendered.max_output_tokens() == 120

    def test_the_token_estimate_is_the_budgets(self, template: PromptTemplate) -> None:
        """The input estimate is the one spend budgets reserve with."""
        rendered = template.render({**VALUES, "note": "x" * 400})
        assert rendered.estimated_input_tokens() == prompt_tokens(rendered.messages)
        assert rendered.estimated_input_tokens() > 100

    def test_an_optional_variable_without_default_is_null(self, template: PromptTemplate) -> None:
        """``required: false`` with no default renders JSON null, visibly, not an empty string."""
        rendered = template.render(VALUES)
        assert rendered.messages[0]["content"] == "Tone: neutral. Note: null."


class TestRenderErrors:
    def test_a_missing_variable(self, template: PromptTemplate) -> None:
        """A required variable left out is named, with its type."""
        values = {k: v for k, v in VALUES.items() if k != "ticket"}
        assert render_problems(template, values) == ["ticket: missing (required, string)"]

    def test_an_extra_variable(self, template: PromptTemplate) -> None:
        """A value for no declared variable is refused, not ignored."""
        assert render_problems(template, {**VALUES, "tickt": "x"}) == [
            "tickt: not a variable of this template"
        ]

    @pytest.mark.parametrize(
        ("name", "value", "expected"),
        [
            ("count", "3", "count: expected integer, got string"),
            ("count", True, "count: expected integer, got boolean"),
            ("count", 2.5, "count: expected integer, got number"),
            ("score", None, "score: expected number, got null"),
            ("urgent", 0, "urgent: expected boolean, got integer"),
            ("tags", "card", "tags: expected array, got string"),
            ("customer", ["Ana"], "customer: expected object, got array"),
        ],
    )
    def test_a_mistyped_variable(
        self, template: PromptTemplate, name: str, value: Any, expected: str
    ) -> None:
        """A value of the wrong JSON type is named with both types, never the value."""
        assert render_problems(template, {**VALUES, name: value}) == [expected]

    def test_a_string_over_max_chars(self, template: PromptTemplate) -> None:
        """A string longer than its ``max_chars`` is refused with its length."""
        assert render_problems(template, {**VALUES, "ticket": "x" * 21}) == [
            "ticket: longer than max_chars 20 (21 chars)"
        ]

    def test_every_problem_at_once(self, template: PromptTemplate) -> None:
        """Missing, extra and mistyped variables are reported together."""
        values = {**VALUES, "count": "3", "extra": 1}
        del values["tags"]
        assert render_problems(template, values) == [
            "extra: not a variable of this template",
            "count: expected integer, got string",
            "tags: missing (required, array)",
        ]

    def test_a_missing_field(self, template: PromptTemplate) -> None:
        """A dotted path the object does not have is named to the first missing part."""
        values = {**VALUES, "customer": {"name": "Ana"}}
        assert render_problems(template, values) == ["customer.address: missing"]

    def test_a_render_error_fails_the_step(self, template: PromptTemplate) -> None:
        """The error is a non-retryable step error: the event renders the same way each time."""
        with pytest.raises(StepError) as raised:
            template.render({})
        assert raised.value.retryable is False
        assert str(raised.value).startswith(f"template {template.id}: cannot render")
