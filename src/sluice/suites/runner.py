"""Run the gates an app declares and gather one verdict: :func:`run_suites`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sluice.suites.gate import GateFactory
from sluice.suites.manifest import load_gates
from sluice.suites.results import CaseResult
from sluice.suites.target import Target


@dataclass(frozen=True, slots=True)
class SuiteRun:
    """Every case's result, in gate order, and the release tested."""

    results: Sequence[CaseResult]
    release: str | None

    @property
    def passed(self) -> bool:
        """True when every case of every gate passed (flaky ones included)."""
        return all(r.passed for r in self.results)


def run_suites(
    target: Target,
    factories: Mapping[str, GateFactory] | None = None,
    only: str | None = None,
    on_gate: Callable[[str, Sequence[CaseResult] | None, float], None] | None = None,
) -> SuiteRun:
    """Build the gates of ``target``'s ``tests/suites.yaml`` (from ``factories``, the
    registry's by default) and run them in order; ``only`` runs one gate. ``on_gate(name,
    results, seconds)`` is told when a gate starts (``results`` None) and ends."""
    if factories is None:
        from sluice.suites.registry import GATES

        factories = GATES
    gates = load_gates(target.tests_dir, factories, only)
    results: list[CaseResult] = []
    for gate in gates:
        started = time.perf_counter()
        if on_gate is not None:
            on_gate(gate.name, None, 0.0)
        ran = gate.run(target)
        if on_gate is not None:
            on_gate(gate.name, ran, time.perf_counter() - started)
        results.extend(ran)
    return SuiteRun(results, target.release)
