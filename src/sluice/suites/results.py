"""What every gate of ``sluice test`` returns: one :class:`CaseResult` per case checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The verdict on one case of one suite of one gate.

    ``gate`` is the gate's name (``golden``, ``snapshot``, ...), ``suite`` the suite or
    snapshot file it came from, ``name`` the case (a golden case, a snapshot metric, a
    contract check). ``message`` says why it failed (the field or metric and the figures) or,
    for a pass, what was checked. ``figures`` holds the numbers behind the verdict, for
    reports and JUnit. ``flaky`` marks a case whose answer changed between repeats.
    """

    gate: str
    suite: str
    name: str
    passed: bool
    message: str
    seconds: float
    figures: dict[str, float | str] = field(default_factory=dict)
    flaky: bool = False


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """The counts of one gate's suite, for the summary table."""

    gate: str
    suite: str
    cases: int
    failed: int
    flaky: int
    seconds: float

    @property
    def passed(self) -> bool:
        """True when no case of the group failed."""
        return self.failed == 0


def summarize(results: Sequence[CaseResult]) -> list[GroupSummary]:
    """One :class:`GroupSummary` per (gate, suite), in the order they first appear."""
    groups: dict[tuple[str, str], list[CaseResult]] = {}
    for result in results:
        groups.setdefault((result.gate, result.suite), []).append(result)
    return [
        GroupSummary(
            gate=gate,
            suite=suite,
            cases=len(items),
            failed=sum(not r.passed for r in items),
            flaky=sum(r.flaky for r in items),
            seconds=sum(r.seconds for r in items),
        )
        for (gate, suite), items in groups.items()
    ]


def as_json(result: CaseResult) -> Mapping[str, object]:
    """A result as a JSON object (the ``--json`` output's ``cases``)."""
    return {
        "gate": result.gate,
        "suite": result.suite,
        "name": result.name,
        "passed": result.passed,
        "flaky": result.flaky,
        "message": result.message,
        "seconds": round(result.seconds, 6),
        "figures": dict(result.figures),
    }
