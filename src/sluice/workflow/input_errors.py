"""Problems with an event's input, said without quoting the input.

Quarantine reasons, the ``errors`` of a 422 problem document and log lines all carry these
messages, and an input value can be an e-mail address or a card number. So a message names
the path, the rule and the kind of value (``$.amount: expected integer, got string (19
chars)``), never the value itself. Paths are built from the schema's and mapping's names;
a key that came from the input passes through the PII masker first.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from jsonschema import ValidationError

from sluice.guard.pii import PiiMasker

# Keeps a message about a schema's enum short however many values the schema allows.
_MAX_LISTED = 10
_MAX_RULE_CHARS = 80
_MAX_NAME_CHARS = 64


def describe(value: Any) -> str:
    """The kind and size of ``value`` without its content: ``string (19 chars)``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return f"string ({len(value)} chars)"
    if isinstance(value, dict):
        return f"object ({len(value)} fields)"
    if isinstance(value, list | tuple):
        return f"array ({len(value)} items)"
    return type(value).__name__


# A 422 lists every problem up to this many; past it, one line says how many more.
MAX_PROBLEMS = 50


@functools.cache
def _masker() -> PiiMasker:
    return PiiMasker()


@functools.lru_cache(maxsize=1024)  # schema names repeat; only short names are cached
def _masked_short_name(name: str) -> str:
    return _masker().mask(name).masked


def _masked_name(name: str) -> str:
    if len(name) <= _MAX_NAME_CHARS:
        return _masked_short_name(name)
    # A key as long as the body allows: masked whole first, so cutting cannot expose a part.
    return _masker().mask(name).masked[: _MAX_NAME_CHARS - 3] + "..."


def json_path(parts: Iterable[Any]) -> str:
    """``$.ticket.items[2]``, with any PII in the names masked (keys may come from input)."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{_masked_name(str(part))}"
    return out


def _rule(value: Any) -> str:
    """A schema value (never input) for a message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _MAX_RULE_CHARS else text[: _MAX_RULE_CHARS - 3] + "..."


def schema_problems(errors: Iterable[ValidationError], limit: int = MAX_PROBLEMS) -> list[str]:
    """Every error as :func:`schema_problem`, in path order, at most ``limit`` of them."""
    ordered = sorted(errors, key=lambda e: list(map(str, e.path)))
    problems = [schema_problem(e) for e in ordered[:limit]]
    if len(ordered) > limit:
        problems.append(f"... and {len(ordered) - limit} more problems (first {limit} listed)")
    return problems


def schema_problem(error: ValidationError) -> str:
    """One ``jsonschema`` error as ``path: expected rule, got kind`` without the value."""
    path = json_path(error.absolute_path)
    got = describe(error.instance)
    # Untyped in jsonschema's stubs (``Unset`` until set); set on every error it yields.
    rule: Any = error.validator
    expected: Any = error.validator_value
    schema: Any = error.schema
    if rule == "type":
        kinds = expected if isinstance(expected, str) else " or ".join(map(str, expected))
        return f"{path}: expected {kinds}, got {got}"
    if rule == "required" and isinstance(error.instance, dict):
        missing = [name for name in expected if name not in error.instance]
        return f"{path}: missing required field {', '.join(map(_rule, missing))}"
    if rule == "additionalProperties" and isinstance(error.instance, dict):
        declared = set(schema.get("properties", {}))
        extra = sum(1 for key in error.instance if key not in declared)
        return f"{path}: {extra} field(s) not allowed by the schema (additionalProperties)"
    if rule == "enum":
        allowed = list(expected)
        shown = ", ".join(map(_rule, allowed[:_MAX_LISTED]))
        more = f" and {len(allowed) - _MAX_LISTED} more" if len(allowed) > _MAX_LISTED else ""
        return f"{path}: expected one of {shown}{more}, got {got}"
    if rule in ("minLength", "maxLength"):
        bound = "at least" if rule == "minLength" else "at most"
        return f"{path}: expected {bound} {expected} chars, got {got}"
    if rule in ("minItems", "maxItems", "minProperties", "maxProperties"):
        bound = "at least" if rule.startswith("min") else "at most"
        unit = "items" if rule.endswith("Items") else "fields"
        return f"{path}: expected {bound} {expected} {unit}, got {got}"
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        return f"{path}: expected a number {op[rule]} {expected}, got {got} out of range"
    if rule == "pattern":
        return f"{path}: expected a string matching {_rule(expected)}, got {got}"
    if rule == "format":
        return f"{path}: expected format {_rule(expected)}, got {got}"
    return f"{path}: fails the schema's {rule!r} rule, got {got}"


def transform_problem(field: str, path: str, transform: str, value: Any) -> str:
    """A mapping transform that could not convert ``value``, said without the value."""
    return f"mapping: {field}: transform {transform} cannot convert {path} ({describe(value)})"
