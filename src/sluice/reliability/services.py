"""The reliability services of an app, wired from its config and workflows.

- ``slo_guards``: a :class:`~sluice.reliability.slo_guards.SloGuards` when a workflow has an
  ``slo:`` section (fed by the executor, asked by admission and the classify step);
- ``spend``: :class:`~sluice.reliability.spend.SpendBudgets` from the ``spend:`` section, on a
  ledger in the app's KV (shared through Redis when the KV is Redis);
- ``escalation``: the :class:`~sluice.reliability.escalation.EscalationGate` the classify step
  asks before each costly tier, when either of the above exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sluice.config import AppSettings
from sluice.kv.base import KV
from sluice.reliability.config import parse_spend
from sluice.reliability.escalation import CostEstimates, EscalationGate
from sluice.reliability.slo_guards import SloGuards
from sluice.reliability.spend import KVLedger, SpendBudgets
from sluice.workflow.model import Workflow


def build_reliability_services(
    settings: AppSettings, workflows: Iterable[Workflow], kv: KV
) -> dict[str, Any]:
    """``slo_guards``, ``spend`` and ``escalation``, as far as the config asks for them."""
    services: dict[str, Any] = {}
    guards = SloGuards(workflows, kv)
    spend = parse_spend(settings.extra.get("spend"))
    budgets = None if spend is None else SpendBudgets(spend.limits, KVLedger(kv))
    if guards:
        services["slo_guards"] = guards
    if budgets is not None:
        services["spend"] = budgets
    if guards or budgets is not None:
        costs = None if spend is None else CostEstimates(spend)
        services["escalation"] = EscalationGate(guards or None, budgets, costs)
    return services


async def reliability_status(services: Mapping[str, Any]) -> dict[str, Any]:
    """The SLO guards (own and published by other processes), spend and skipped escalations."""
    status: dict[str, Any] = {}
    guards = services.get("slo_guards")
    if isinstance(guards, SloGuards):
        status["slo_guards"] = guards.snapshot()
        status["slo_peers"] = guards.peers()
    gate = services.get("escalation")
    if isinstance(gate, EscalationGate):
        status["escalations_skipped"] = dict(gate.skipped)
    return status
