"""The :class:`Gate` protocol and what a gate is built from (:class:`GateSpec`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sluice.suites.results import CaseResult
from sluice.suites.target import Target
from sluice.suites.yamlfile import SuiteError, where


class Gate(Protocol):
    """One kind of check ``sluice test`` runs: golden suites, snapshots, contracts.

    ``run`` checks ``target`` and returns one :class:`CaseResult` per case; a failing case is
    a result with ``passed=False``, never an exception (exceptions are for a gate that cannot
    run at all: a missing file, a broken app).
    """

    @property
    def name(self) -> str:
        """The gate's name, as ``tests/suites.yaml`` declares it (``golden``, ...)."""
        ...

    def run(self, target: Target) -> list[CaseResult]:
        """Check the app under test."""
        ...


@dataclass(frozen=True, slots=True)
class GateSpec:
    """A gate's section of ``tests/suites.yaml``: its ``options`` (the mapping under the
    gate's name), the manifest ``file`` and ``line`` (for errors), and the ``tests_dir`` its
    files are relative to."""

    name: str
    options: Mapping[str, Any]
    tests_dir: Path
    file: Path
    line: int

    def problem(self, key: str | None, message: str) -> SuiteError:
        """A :class:`SuiteError` at this gate's ``key`` (its own line when None)."""
        line_of = getattr(self.options, "line_of", None)
        line = line_of(key) if key is not None and line_of is not None else self.line
        field = self.name if key is None else f"{self.name}.{key}"
        return SuiteError(f"{where(self.file, line, field)}: {message}")

    def names(self, key: str) -> list[str]:
        """The option ``key`` as a non-empty list of names (a single string is one name)."""
        raw = self.options.get(key)
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            raise self.problem(key, "must be a name or a non-empty list of names")
        return list(raw)


#: Builds a gate from its section of ``tests/suites.yaml`` (validating it: unknown keys and
#: bad values raise :class:`~sluice.suites.yamlfile.SuiteError` naming file, line and key).
GateFactory = Callable[[GateSpec], Gate]
