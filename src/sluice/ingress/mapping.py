"""Source mappings: from a provider's webhook payload to a workflow's input.

A mapping names each input field and where it comes from::

    mapping:
      text: $.ticket.description                        # a path; required
      subject: {path: $.ticket.subject, default: ""}    # optional, with a default
      channel: {const: webhook}                         # a constant
      email: {path: $.requester.email, transform: lower}

Paths are ``$`` followed by ``.name`` and ``[index]`` parts. Transforms: ``lower``, ``upper``,
``strip``, ``str``, ``int``, ``float``. Without a mapping the payload is the input as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.errors import ConfigError
from sluice.workflow.input_errors import transform_problem

_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
_MISSING = object()
TRANSFORMS: Mapping[str, Callable[[Any], Any]] = {
    "lower": lambda v: str(v).lower(),
    "upper": lambda v: str(v).upper(),
    "strip": lambda v: str(v).strip(),
    "str": str,
    "int": int,
    "float": float,
}


def compile_path(path: str) -> tuple[str | int, ...]:
    """Parse ``$.a.b[0]`` into its parts; raise ValueError when it is not one."""
    if not path.startswith("$"):
        raise ValueError(f"path {path!r} must start with '$'")
    parts: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _PART.match(path, pos)
        if match is None:
            raise ValueError(f"path {path!r}: cannot read from position {pos}")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    return tuple(parts)


def _lookup(doc: Any, parts: tuple[str | int, ...]) -> Any:
    node = doc
    for part in parts:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return _MISSING
            node = node[part]
        else:
            if not isinstance(node, dict) or part not in node:
                return _MISSING
            node = node[part]
    return node


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    path: tuple[str | int, ...] | None
    raw_path: str
    const: Any
    default: Any
    transform: Callable[[Any], Any] | None
    transform_name: str


class SourceMapping:
    """A compiled mapping; :meth:`apply` returns the input and the problems found."""

    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        self.identity = spec is None
        self._fields: list[_Field] = []
        problems: list[str] = []
        for name, rule in (spec or {}).items():
            if isinstance(rule, str):
                rule = {"path": rule}  # noqa: PLW2901 - the short form expands to the long one
            if not isinstance(rule, Mapping) or ("path" in rule) == ("const" in rule):
                problems.append(
                    f"mapping.{name}: give a path string, {{path: ...}} or {{const: ...}}"
                )
                continue
            path = None
            if "path" in rule:
                try:
                    path = compile_path(str(rule["path"]))
                except ValueError as exc:
                    problems.append(f"mapping.{name}.path: {exc}")
                    continue
            transform_name = str(rule.get("transform", ""))
            if transform_name and transform_name not in TRANSFORMS:
                problems.append(f"mapping.{name}.transform: unknown transform {transform_name!r}")
                continue
            self._fields.append(
                _Field(name, path, str(rule.get("path", "")), rule.get("const"),
                       rule.get("default", _MISSING), TRANSFORMS.get(transform_name),
                       transform_name)
            )  # fmt: skip
        if problems:
            raise ConfigError("invalid source mapping", problems)

    def apply(self, payload: Any) -> tuple[Any, list[str]]:
        """Map ``payload``; every missing required field or failed transform is a problem.

        Problems name fields, paths and kinds of values, never the values themselves.
        """
        if self.identity:
            return payload, []
        out: dict[str, Any] = {}
        problems: list[str] = []
        for f in self._fields:
            if f.path is None:
                out[f.name] = f.const
                continue
            value = _lookup(payload, f.path)
            if value is _MISSING:
                if f.default is _MISSING:
                    problems.append(f"mapping: {f.name}: {f.raw_path} not found in the payload")
                else:
                    out[f.name] = f.default
                continue
            if f.transform is not None:
                try:
                    value = f.transform(value)
                except (TypeError, ValueError):
                    # The exception text quotes the value (``invalid literal ... 'a@b.c'``).
                    problems.append(transform_problem(f.name, f.raw_path, f.transform_name, value))
                    continue
            out[f.name] = value
        return out, problems
