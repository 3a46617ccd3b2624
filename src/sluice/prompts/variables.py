"""A template's declared variables: their types, bounds and defaults, checked at load and at
render.

Types are JSON's: ``string`` (with an optional ``max_chars``), ``integer``, ``number``,
``boolean``, ``array`` and ``object``. A variable is required unless it says
``required: false`` or has a ``default``; a default must be of the variable's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The variable types a template may declare, each with the Python values that fit it.
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}
_KEYS = frozenset({"type", "description", "max_chars", "required", "default"})


@dataclass(frozen=True, slots=True)
class Variable:
    """One declared variable of a template."""

    name: str
    type: str
    required: bool = True
    default: Any = None
    max_chars: int | None = None
    description: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit this variable, or None when it does."""
        return _problem(self.type, self.max_chars, value)

    def canonical(self) -> dict[str, Any]:
        """The variable as plain data, for the template's content address."""
        return {
            "type": self.type,
            "required": self.required,
            "default": self.default,
            "max_chars": self.max_chars,
            "description": self.description,
        }


def parse_variables(raw: Any, problems: list[str]) -> dict[str, Variable]:
    """The ``variables:`` section as :class:`Variable` objects; problems go to ``problems``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("variables: expected a mapping of variable name to its declaration")
        return {}
    variables = {}
    for name, declared in raw.items():
        where = f"variables.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(f"{where}: a variable name must be an identifier")
            continue
        # Shorthand: `ticket: string`.
        spec = {"type": declared} if isinstance(declared, str) else declared
        if not isinstance(spec, dict):
            problems.append(f"{where}: expected a type name or a mapping with 'type'")
            continue
        variable = _parse_one(name, spec, where, problems)
        if variable is not None:
            variables[name] = variable
    return variables


def _parse_one(
    name: str, spec: Mapping[str, Any], where: str, problems: list[str]
) -> Variable | None:
    before = len(problems)
    for key in sorted(set(spec) - _KEYS, key=str):
        problems.append(f"{where}.{key}: unknown key (known: {', '.join(sorted(_KEYS))})")
    kind = spec.get("type")
    if kind not in TYPES:
        problems.append(f"{where}.type: must be one of {', '.join(TYPES)}, got {kind!r}")
        return None
    max_chars = spec.get("max_chars")
    if max_chars is not None and (
        kind != "string"
        or not isinstance(max_chars, int)
        or isinstance(max_chars, bool)
        or max_chars < 1
    ):
        problems.append(f"{where}.max_chars: a positive integer, on string variables only")
        max_chars = None
    required = spec.get("required", True)
    if not isinstance(required, bool):
        problems.append(f"{where}.required: must be true or false")
    description = spec.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{where}.description: must be a string")
    default = spec.get("default")
    if "default" in spec:
        why = _problem(kind, max_chars, default)
        if why is not None:
            problems.append(f"{where}.default: {why}")
    if len(problems) > before:
        return None
    return Variable(
        name=name,
        type=kind,
        # A default makes the variable optional: leaving it out renders the default.
        required=bool(required) and "default" not in spec,
        default=default,
        max_chars=max_chars,
        description=description,
    )


def _problem(kind: str, max_chars: int | None, value: Any) -> str | None:
    # bool is an int in Python, but never an integer or a number in JSON.
    if not isinstance(value, TYPES[kind]) or (isinstance(value, bool) and kind != "boolean"):
        return f"expected {kind}, got {_json_type(value)}"
    if max_chars is not None and isinstance(value, str) and len(value) > max_chars:
        return f"longer than max_chars {max_chars} ({len(value)} chars)"
    return None


def _json_type(value: Any) -> str:
    """The JSON type name of ``value`` (never the value: it may be personal data)."""
    for name, kinds in (("null", (type(None),)), ("boolean", (bool,)), *TYPES.items()):
        if isinstance(value, kinds):
            return "integer" if name == "number" and isinstance(value, int) else name
    return type(value).__name__
