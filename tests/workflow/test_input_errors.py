"""Input problems name the path, the rule and the kind of value, never the value."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.ingress.mapping import SourceMapping
from sluice.workflow.input_errors import MAX_PROBLEMS, describe, schema_problem, schema_problems

EMAIL = "jane.doe@example.com"
CARD = "4111111111111111"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text", "amount"],
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 10, "pattern": "^[a-z]+$"},
        "amount": {"type": "integer", "minimum": 0, "maximum": 100},
        "kind": {"enum": ["a", "b"]},
        "fixed": {"const": "x"},
        "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
        "choice": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
        "nested": {"type": "object", "properties": {"deep": {"type": "integer"}}},
    },
}


def _problems(data: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [schema_problem(e) for e in validator.iter_errors(data)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"text": CARD, "amount": 1}, "$.text: expected at most 10 chars, got string (16 chars)"),
        ({"text": "ok", "amount": CARD}, "$.amount: expected integer, got string (16 chars)"),
        ({"text": "ok", "amount": 4111111111111111}, "$.amount: expected a number <= 100, got"
                                                     " integer out of range"),
        ({"text": "ok"}, "$: missing required field 'amount'"),
        ({"text": "ok", "amount": 1, EMAIL: 1}, "$: 1 field(s) not allowed by the schema"
                                                " (additionalProperties)"),
        ({"text": "ok", "amount": 1, "kind": EMAIL}, "$.kind: expected one of 'a', 'b', got"
                                                     " string (20 chars)"),
        ({"text": "ok", "amount": 1, "tags": [1, 2]}, "$.tags: expected at most 1 items, got"
                                                      " array (2 items)"),
        ({"text": "ok", "amount": 1, "nested": {"deep": EMAIL}}, "$.nested.deep: expected"
                                                                 " integer, got string (20 chars)"),
        ({"text": "ok", "amount": 1, "choice": EMAIL}, "$.choice: fails the schema's 'anyOf'"
                                                       " rule, got string (20 chars)"),
    ],
)  # fmt: skip
def test_messages_name_path_rule_and_kind(data: Any, expected: str) -> None:
    """Each rule's message says what was expected and what kind of value came."""
    problems = _problems(data)
    assert expected in problems
    assert not [p for p in problems if EMAIL in p or CARD in p]


@given(
    st.dictionaries(
        st.sampled_from(["text", "amount", "kind", "fixed", "tags", "choice", "nested", EMAIL]),
        st.recursive(
            st.sampled_from([EMAIL, CARD, 4111111111111111, None, True, 1.5]),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.just(EMAIL), inner),
            max_leaves=5,
        ),
    )
)
def test_no_message_quotes_a_value(data: dict[str, Any]) -> None:
    """Whatever the input, no problem carries the e-mail or the card number in any form."""
    for problem in _problems(data):
        assert EMAIL not in problem
        assert "4111" not in problem


def test_keys_from_the_input_in_a_path_are_masked() -> None:
    """An object keyed by the input's own values: the path masks PII in the key."""
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    errors = jsonschema.Draft202012Validator(schema).iter_errors({EMAIL: "x"})
    assert [schema_problem(e) for e in errors] == ["$.<EMAIL_1>: expected integer, got string"
                                                   " (1 chars)"]  # fmt: skip


def test_mapping_transform_problem_does_not_quote_the_value() -> None:
    """``int('jane.doe@...')`` fails without its exception text (which quotes the value)."""
    mapping = SourceMapping({"amount": {"path": "$.payment.amount", "transform": "int"}})
    _, problems = mapping.apply({"payment": {"amount": EMAIL}})
    assert problems == [
        "mapping: amount: transform int cannot convert $.payment.amount (string (20 chars))"
    ]


@pytest.mark.parametrize(
    ("value", "kind"),
    [(None, "null"), (True, "boolean"), (3, "integer"), (1.5, "number"),
     ("abc", "string (3 chars)"), ({"a": 1}, "object (1 fields)"), ([1, 2], "array (2 items)")],
)  # fmt: skip
def test_describe(value: Any, kind: str) -> None:
    """A value's kind and size only."""
    assert describe(value) == kind


def test_problems_are_bounded() -> None:
    """Thousands of errors in one document: the first ``MAX_PROBLEMS`` and a count."""
    schema = {"type": "array", "items": {"type": "integer"}}
    errors = jsonschema.Draft202012Validator(schema).iter_errors([EMAIL] * 2_000)
    problems = schema_problems(errors)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0] == "$[0]: expected integer, got string (20 chars)"
    assert problems[-1] == f"... and {2_000 - MAX_PROBLEMS} more problems (first 50 listed)"


def test_long_keys_are_masked_then_cut() -> None:
    """A key of many kilobytes shows as its masked start, never as a cut-off value."""
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    key = "x" * 40 + " " + EMAIL + " " + "y" * 10_000
    (problem,) = [schema_problem(e) for e in jsonschema.Draft202012Validator(schema).iter_errors(
        {key: "v"})]  # fmt: skip
    name = f"{'x' * 40} <EMAIL_1> {'y' * 10}..."  # 64 chars in all
    assert problem == f"$.{name}: expected integer, got string (1 chars)"
