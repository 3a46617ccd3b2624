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
from pathlib import Path
from typing import Any

import yaml

from sluice.errors import ConfigError, StepError
from sluice.workflow.context import StepContext
from sluice.workflow.model import JSONObject

PRIORITIES = ("urgent", "high", "normal", "low")


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """A parsed rules file."""

    default_team: str
    default_priority: str
    team_of: Mapping[str, str]
    urgent: frozenset[str]

    @classmethod
    def load(cls, path: Path) -> RoutingRules:
        """Parse and check a rules file; every problem is reported."""
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"routing rules {path}: {exc}") from exc
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
            raise ConfigError(f"invalid routing rules in {path}", problems)
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


class RulesCache:
    """Rules files by path, parsed once per process (bounded by the files an app names)."""

    def __init__(self, app_dir: Path) -> None:
        self._app_dir = app_dir
        self._rules: dict[str, RoutingRules] = {}

    def get(self, name: str) -> RoutingRules:
        """The parsed rules of ``name`` (relative to the app directory)."""
        rules = self._rules.get(name)
        if rules is None:
            rules = self._rules[name] = RoutingRules.load(self._app_dir / name)
        return rules


async def route(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Add ``route`` for the label in ``options.field`` (default ``intent``)."""
    name = ctx.options.get("rules")
    if not name:
        raise StepError("route: options.rules names the rules file", retryable=False)
    try:
        rules = ctx.service("routing").get(str(name))
    except ConfigError as exc:
        raise StepError(str(exc), retryable=False) from exc
    label: Any = data.get(str(ctx.options.get("field", "intent")))
    return {**data, "route": rules.route(label if isinstance(label, str) else None)}
