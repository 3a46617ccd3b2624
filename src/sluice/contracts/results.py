"""The outcome of one contract check: its name, pass or fail, a one-line message, figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One contract check: ``name`` (``inbound:helpdesk``, ``consumer:delivery``,
    ``own-api``), whether it ``passed``, a ``message`` naming the check and its figures,
    the ``figures`` themselves and the first ``problems`` found."""

    name: str
    passed: bool
    message: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "name": self.name,
            "passed": self.passed,
            "message": self.message,
            "figures": dict(self.figures),
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
        }
