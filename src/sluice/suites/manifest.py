"""``APP_DIR/tests/suites.yaml``: which gates ``sluice test`` runs on an app, and how.

Each top-level key names a gate of the registry (:data:`sluice.suites.registry.GATES`) and
holds that gate's options; the gates run in the file's order::

    golden:
      suites: [triage]          # tests/golden/triage.v<N>.yaml, the highest N
    snapshot:
      snapshots: [replay]       # tests/snapshots/replay.yaml

An unknown gate, or an unknown key of a gate, is an error naming the file, line and key
(with the closest known name).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sluice.config import did_you_mean
from sluice.suites.gate import Gate, GateFactory, GateSpec
from sluice.suites.yamlfile import LineMap, SuiteError, load_yaml, where

MANIFEST = "suites.yaml"


def load_gates(
    tests_dir: Path, factories: Mapping[str, GateFactory], only: str | None = None
) -> list[Gate]:
    """The gates ``tests_dir/suites.yaml`` declares, built by ``factories``; with ``only``,
    just that gate (which the manifest must declare)."""
    path = tests_dir / MANIFEST
    if not path.is_file():
        raise SuiteError(
            f"{path}: no such file: an app's suites.yaml names the gates"
            f" {'sluice test'!r} runs ({', '.join(factories)})"
        )
    raw = load_yaml(path)
    if raw is None:
        raise SuiteError(f"{path}: empty: declare at least one gate ({', '.join(factories)})")
    if not isinstance(raw, LineMap):
        raise SuiteError(f"{path}:1: must be a mapping of gate name to its options")
    problems = [
        f"{where(path, raw.line_of(name), str(name))}: unknown gate"
        f"{did_you_mean(str(name), factories)} (known: {', '.join(factories)})"
        for name in raw
        if name not in factories
    ]
    if len(problems) == 1:  # one problem, one line
        raise SuiteError(problems[0])
    if problems:
        raise SuiteError(f"{path}: invalid tests manifest", problems)
    if only is not None and only not in raw:
        raise SuiteError(
            f"{path}: gate {only!r} is not declared"
            f"{did_you_mean(only, raw)} (declared: {', '.join(map(str, raw))})"
        )
    gates = []
    for name, options in raw.items():
        if only is not None and name != only:
            continue
        opts = LineMap() if options is None else options
        if not isinstance(opts, Mapping):
            raise SuiteError(f"{where(path, raw.line_of(name), str(name))}: must be a mapping")
        spec = GateSpec(str(name), opts, tests_dir, path, raw.line_of(name))
        gates.append(factories[str(name)](spec))
    return gates


def check_keys(spec: GateSpec, known: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """Refuse keys of ``spec.options`` not in ``known`` and missing ``required`` ones."""
    for key in spec.options:
        if key not in known:
            raise spec.problem(
                str(key),
                f"unknown key{did_you_mean(str(key), known)} (known: {', '.join(known)})",
            )
    for key in required:
        if key not in spec.options:
            raise spec.problem(None, f"missing key {key!r}")
