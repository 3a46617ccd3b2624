"""The ``contract`` gate of ``sluice test``: the app's contract checks as cases.

Declared in ``tests/suites.yaml`` with how much each check sends (all optional)::

    contract:
      examples: 30         # generated payloads per webhook source
      events: 5            # events run per webhook partner
      api_examples: 10     # schemathesis requests per operation of Sluice's API; 0: off

Each check of :func:`sluice.contracts.run_contracts` (inbound per source, consumer per
partner, the own API) becomes one :class:`CaseResult` of suite ``inbound``, ``consumer`` or
``own-api``, its message naming the check and the figures; the figures go to reports flat
(``valid.accepted``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluice.contracts.results import CheckResult
from sluice.errors import MissingExtraError
from sluice.suites.gate import Gate, GateSpec
from sluice.suites.manifest import check_keys
from sluice.suites.results import CaseResult
from sluice.suites.target import Target

if TYPE_CHECKING:
    from sluice.contracts.runner import ContractOptions

_KEYS = ("examples", "events", "api_examples")
#: Upper bounds that keep the gate a matter of seconds to a minute.
_MAX = {"examples": 1000, "events": 200, "api_examples": 200}


def flat_figures(figures: Mapping[str, Any], prefix: str = "") -> dict[str, float | str]:
    """Nested figures as one level (``{"valid": {"sent": 3}}`` -> ``{"valid.sent": 3}``)."""
    out: dict[str, float | str] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_figures(value, f"{name}."))
        elif isinstance(value, bool):
            out[name] = str(value).lower()
        elif isinstance(value, int | float):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def case_of(result: CheckResult, gate: str) -> CaseResult:
    """One check as a case of ``gate``, its suite the part of its name before ``:``
    (``inbound:helpdesk`` is in suite ``inbound``; ``sluice ci security``'s checks are in
    ``security``)."""
    suite = result.name.split(":", 1)[0]
    message = result.message
    if not result.passed and len(result.problems) > 1:
        message += f" (+{len(result.problems) - 1} more problems)"
    return CaseResult(gate, suite, result.name, result.passed, message, result.seconds,
                      flat_figures(result.figures))  # fmt: skip


@dataclass(frozen=True, slots=True)
class ContractGate:
    """Runs every contract check of the app under test."""

    options: ContractOptions
    name: str = "contract"

    def run(self, target: Target) -> list[CaseResult]:
        """The checks, each a case; contracts that cannot be read raise (the gate cannot
        run)."""
        from sluice.contracts.runner import run_contracts

        results = asyncio.run(run_contracts(target.app_dir, self.options, environ=target.environ))
        return [case_of(result, self.name) for result in results]


def contract_gate(spec: GateSpec) -> Gate:
    """Build the gate from ``contract: {examples, events, api_examples}``."""
    try:  # the generators are the ``testing`` extra
        from sluice.contracts.runner import ContractOptions
    except ModuleNotFoundError as exc:
        raise MissingExtraError("the contract gate", "testing", exc.name or "hypothesis") from exc
    check_keys(spec, _KEYS)
    values: dict[str, int] = {}
    defaults = ContractOptions()
    for key in _KEYS:
        value = spec.options.get(key, getattr(defaults, key))
        low = 0 if key == "api_examples" else 1
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= _MAX[key]:
            raise spec.problem(key, f"must be an integer in {low}..{_MAX[key]}, got {value!r}")
        values[key] = value
    return ContractGate(ContractOptions(**values), spec.name)
