"""The ``route`` step: pick a team queue and a priority for a label, from a rules file.

Rules file (YAML, relative to the app directory)::

    default: {team: general, priority: normal}
    urgent: [lost_or_stolen_card, compromised_card]     # these jump every queue
    teams:
      cards: [card_arrival, card_not_working]
      payments: [transfer_failed, pending_transfer]

Step options: ``rules`` (the file), ``field`` (where the label is; default ``intent``). The
step adds ``route: {team, priority, queue}`` to the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluice.errors import ConfigError, StepError
from sluice.workflow.context import StepContext
from sluice.workflow.model import JSONObject

if TYPE_CHECKING:
    from sluice.steps.files import AppFiles

PRIORITIES = ("urgent", "high", "normal", "low")


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """A parsed rules file."""

    default_team: str
    default_priority: str
    team_of: Mapping[str, str]
    urgent: frozenset[str]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], source: str) -> RoutingRules:
        """Check a parsed rules file; every problem is reported."""
        problems: list[str] = []
        default = raw.get("default") or {}
        priority = default.get("priority", "normal")
        if priority not in PRIORITIES:
            problems.append(f"default.priority: one of {', '.join(PRIORITIES)}")
        team_of: dict[str, str] = {}
        for team, labels in (raw.get("teams") or {}).items():
            for label in labels or []:
                if label in team_of:
                    problems.append(f"teams.{team}: {label!r} is already in {team_of[label]!r}")
                team_of[str(label)] = str(team)
        if problems:
            raise ConfigError(f"invalid routing rules in {source}", problems)
        return cls(
            default_team=str(default.get("team", "general")),
            default_priority=str(priority),
            team_of=team_of,
            urgent=frozenset(str(u) for u in raw.get("urgent") or []),
        )

    def route(self, label: str | None) -> dict[str, str]:
        """Team, priority and queue name for ``label``."""
        team = self.team_of.get(label or "", self.default_team)
        priority = "urgent" if label in self.urgent else self.default_priority
        return {"team": team, "priority": priority, "queue": f"{team}:{priority}"}


async def route(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Add ``route`` for the label in ``options.field`` (default ``intent``)."""
    name = ctx.options.get("rules")
    if not name:
        raise StepError("route: options.rules names the rules file", retryable=False)
    try:
        files: AppFiles = ctx.service("files")
        rules = files.parsed(str(name), RoutingRules.parse)
    except ConfigError as exc:
        raise StepError(str(exc), retryable=False) from exc
    label: Any = data.get(str(ctx.options.get("field", "intent")))
    return {**data, "route": rules.route(label if isinstance(label, str) else None)}
