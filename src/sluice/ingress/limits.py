"""Bounds on what a request may carry: body size, JSON nesting depth, number of fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits; requests past them are refused before any other work."""

    max_body_bytes: int = 1 << 20
    max_depth: int = 32
    max_fields: int = 2_000


def shape_problem(value: Any, limits: Limits) -> str | None:
    """Why ``value`` is too deep or too wide, or None when it is within the limits.

    Iterative, so a hostile document cannot exhaust the interpreter's stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    fields = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limits.max_depth:
            return f"JSON nesting deeper than {limits.max_depth} levels"
        fields += len(children)
        if fields > limits.max_fields:
            return f"more than {limits.max_fields} JSON fields and items"
        stack.extend((child, depth + 1) for child in children)
    return None
