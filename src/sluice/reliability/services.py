"""The reliability services of an app, wired from its config and workflows.

:class:`ReliabilityServices` is the ``reliability`` group of :class:`sluice.services.Services`:

- ``slo_guards``: a :class:`~sluice.reliability.slo_guards.SloGuards` when a workflow has an
  ``slo:`` section (fed by the executor, asked by admission and the classify step);
- ``spend``: :class:`~sluice.reliability.spend.SpendBudgets` from the ``spend:`` section, on a
  ledger in the app's KV (shared through Redis when the KV is Redis);
- ``escalation``: the :class:`~sluice.reliability.escalation.EscalationGate` every model call
  of a step passes (the classify step's tiers, custom steps' calls through
  ``ctx.service("models")``), when either of the above exists.

A step's ``options.degrade_to`` is checked here, when the app loads: it must name a model, and
a one-tier ``classify`` step under a budget that degrades must have one, since it has no
cheaper tier to fall back to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.config import AppSettings
from sluice.errors import ConfigError
from sluice.kv.base import KV
from sluice.reliability.config import SpendSettings, parse_spend
from sluice.reliability.escalation import CostEstimates, EscalationGate
from sluice.reliability.slo_guards import SloGuards
from sluice.reliability.spend import KVLedger, OnExhausted, SpendBudgets
from sluice.workflow.model import Workflow


@dataclass(frozen=True, slots=True)
class ReliabilityServices:
    """The SLO guards, spend budgets and escalation gate of an app; None where not configured."""

    slo_guards: SloGuards | None = None
    spend: SpendBudgets | None = None
    escalation: EscalationGate | None = None


def build_reliability_services(
    settings: AppSettings, workflows: Iterable[Workflow], kv: KV
) -> ReliabilityServices:
    """``slo_guards``, ``spend`` and ``escalation``, as far as the config asks for them."""
    workflows = list(workflows)
    guards = SloGuards(workflows, kv)
    spend = parse_spend(settings.extra.get("spend"))
    check_degrade_paths(spend, workflows, settings.extra.get("models"))
    budgets = None if spend is None else SpendBudgets(spend.limits, KVLedger(kv))
    gate = None
    if guards or budgets is not None:
        costs = None if spend is None else CostEstimates(spend)
        gate = EscalationGate(guards or None, budgets, costs)
    return ReliabilityServices(guards if guards else None, budgets, gate)


def check_degrade_paths(
    spend: SpendSettings | None, workflows: Iterable[Workflow], models: object
) -> None:
    """Every step's ``degrade_to`` names a model, and one-tier cascades that may have to
    degrade have one; raises one :class:`ConfigError` with every problem and its path."""
    known = set(models) if isinstance(models, Mapping) else set()
    limits = {} if spend is None else spend.limits
    # A tenant's budget applies to every workflow (the tenant is known only per event).
    degrade = OnExhausted.DEGRADE
    tenant_degrades = sorted(
        k for k, v in limits.items() if k.startswith("tenant:") and v.on_exhausted is degrade
    )
    problems: list[str] = []
    for workflow in workflows:
        own = limits.get(f"workflow:{workflow.name}")
        degrading = tenant_degrades + (
            [f"workflow:{workflow.name}"]
            if own is not None and own.on_exhausted is OnExhausted.DEGRADE
            else []
        )
        for step in workflow.steps:
            path = f"workflows.{workflow.name}.steps.{step.name}.options"
            target = step.options.get("degrade_to")
            if target is not None and (not isinstance(target, str) or target not in known):
                problems.append(
                    f"{path}.degrade_to: {target!r} is not a model of the models: section"
                    f" (models: {', '.join(sorted(known)) or 'none'})"
                )
            tiers = step.options.get("cascade")
            one_tier = isinstance(tiers, list) and len(tiers) == 1
            if step.uses == "classify" and one_tier and degrading and target is None:
                problems.append(
                    f"{path}.degrade_to: required: spend budget {degrading[0]!r} degrades when"
                    " used up, and a one-tier cascade has no cheaper tier to fall back to"
                )
    if problems:
        raise ConfigError("invalid degrade path", problems)


async def reliability_status(services: ReliabilityServices) -> dict[str, Any]:
    """The SLO guards (own and published by other processes), spend and skipped escalations."""
    status: dict[str, Any] = {}
    if services.slo_guards is not None:
        status["slo_guards"] = services.slo_guards.snapshot()
        status["slo_peers"] = services.slo_guards.peers()
    if services.escalation is not None:
        status["escalations_skipped"] = dict(services.escalation.skipped)
    return status
