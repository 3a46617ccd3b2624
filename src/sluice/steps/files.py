"""The ``files`` service: small YAML files of the app (routing rules, reply templates).

Steps name a file relative to the app directory; it is read and parsed once per process and
kept (an app names a handful of such files, so the cache is bounded by the app itself). Names
that leave the app directory are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sluice.errors import ConfigError

T = TypeVar("T")


def _as_is(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return raw


class AppFiles:
    """YAML files under the app directory, parsed once."""

    def __init__(self, app_dir: Path, max_files: int = 256) -> None:
        self._app_dir = app_dir.resolve()
        self._max_files = max_files
        self._parsed: dict[tuple[str, str], Any] = {}

    def _read(self, name: str) -> Mapping[str, Any]:
        path = (self._app_dir / name).resolve()
        if not path.is_relative_to(self._app_dir):
            raise ConfigError(f"{name}: outside the app directory")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{name}: {exc}") from exc
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{name}: the top level must be a mapping")
        return raw

    def parsed(self, name: str, parse: Callable[[Mapping[str, Any], str], T]) -> T:
        """``parse(contents, name)`` of the file, computed once per (file, parser)."""
        # By the parser's name, not its identity: a classmethod is a new object on each access.
        key = (name, f"{parse.__module__}.{parse.__qualname__}")
        if key not in self._parsed:
            if len(self._parsed) >= self._max_files:
                raise ConfigError(f"more than {self._max_files} app files in use")
            self._parsed[key] = parse(self._read(name), name)
        result: T = self._parsed[key]
        return result

    def yaml(self, name: str) -> Mapping[str, Any]:
        """The parsed contents of ``name``."""
        return self.parsed(name, _as_is)
