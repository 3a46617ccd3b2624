"""YAML read with line numbers, so an error in a suite file names its file, line and field.

:func:`load_yaml` returns plain dicts and lists (subclasses): :class:`LineMap` remembers the
line of each key, :class:`LineList` the line of each item. :func:`where` formats a location
as ``FILE:LINE: FIELD``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sluice.config import did_you_mean
from sluice.errors import ConfigError


class SuiteError(ConfigError):
    """A suite, snapshot or tests manifest that cannot be used; each problem names the file,
    the line and the field."""


class LineMap(dict[Any, Any]):
    """A mapping read from YAML; ``line`` is where it starts, ``key_lines`` where each key is."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        """The line of ``key`` (the mapping's own line when it has no such key)."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence read from YAML; ``line`` is where it starts, ``item_lines`` each item's."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        """The line of item ``index``."""
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    """A safe loader whose mappings and sequences keep their lines; duplicate keys refused."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            duplicate = key in result
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList()
    result.line = node.start_mark.line + 1
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))
        result.item_lines.append(item.start_mark.line + 1)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_yaml(path: Path) -> Any:
    """Parse ``path``; a missing file or a YAML syntax error raises :class:`SuiteError` with
    the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SuiteError(f"{path}{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: invalid YAML: {exc}") from None


def where(path: Path, line: int, field: str) -> str:
    """``FILE:LINE: FIELD`` for a problem message."""
    return f"{path}:{line}: {field}"


def unknown(key: object, known: Sequence[str], what: str = "key") -> str:
    """``unknown KEY (did you mean X?)``, or the known names when none is close."""
    hint = did_you_mean(str(key), known) or f" (known: {', '.join(known)})"
    return f"unknown {what}{hint}"
