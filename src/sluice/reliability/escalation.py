"""The gate every model call of a step passes: the spend budgets, and the SLO guard for
escalations.

Before any model call of a step (every cascade tier, the first included, and the calls custom
steps make through ``ctx.service("models")``) its cost is reserved with
:meth:`EscalationGate.reserve` against the workflow's and the tenant's spend budgets, so
concurrent events cannot overshoot them together. When a budget is used up, its policy decides:
``degrade`` returns the reason (``spend``) and the caller takes its declared cheaper path (the
cheap tier's answer, or the step's ``degrade_to`` model); ``refuse`` fails the step with the
budget's error (not retried: the budget will not come back within the event's time), and
admission refuses new events on that budget until its window ends.

Before a tier past the first, :meth:`EscalationGate.allow` also asks the workflow's SLO guard:
while it is degrading (p95 or error rate slipped, policy ``degrade``) the cheap answer stands.

The amount held is the call's estimated cost (:mod:`sluice.models.estimate`: the price table
and the request's tokens, or a local model's per-call price), unless ``spend.reserve`` names an
amount for the model. A granted :class:`Hold` is committed with what the call really cost, or
released if it failed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from sluice.errors import AdmissionError, StepError
from sluice.reliability.config import SpendSettings
from sluice.reliability.slo_guards import SloGuards
from sluice.reliability.spend import BudgetExhaustedError, Reservation, SpendBudgets

_MAX_MODELS = 256
_MAX_REFUSING = 10_000


@dataclass(slots=True)
class Hold:
    """The reservations one escalation holds, one per budget that caps it."""

    reservations: tuple[Reservation, ...]
    costs: CostEstimates | None = None
    model: str = ""

    async def commit(self, actual: float) -> None:
        """Charge what the call cost to every budget (and learn the model's cost)."""
        if self.costs is not None:
            self.costs.observe(self.model, actual)
        for reservation in self.reservations:
            await reservation.commit(actual)

    async def release(self) -> None:
        """The call did not happen (or failed): give every reservation back."""
        for reservation in self.reservations:
            await reservation.release()


class CostEstimates:
    """What to reserve for one call of a model: configured, else the call's estimate, else the
    costliest call of it seen so far, else ``default_reserve``."""

    def __init__(self, settings: SpendSettings) -> None:
        self._settings = settings
        self._seen: OrderedDict[str, float] = OrderedDict()

    def of(self, model: str, estimate: float | None = None) -> float:
        """The amount to hold for one call of ``model`` whose estimated cost is ``estimate``."""
        configured = self._settings.reserve.get(model)
        if configured is not None:
            return configured
        if estimate is not None:  # from the price table: an upper bound of this very call
            return estimate
        return self._seen.get(model, self._settings.default_reserve)

    def observe(self, model: str, cost: float) -> None:
        """Remember the costliest call of ``model`` (bounded to a few hundred models)."""
        if cost > self._seen.get(model, 0.0):
            self._seen[model] = cost
            self._seen.move_to_end(model)
            while len(self._seen) > _MAX_MODELS:
                self._seen.popitem(last=False)


class EscalationGate:
    """The app's spend gate for every model call, and its escalation policy for costly tiers."""

    def __init__(
        self,
        guards: SloGuards | None,
        budgets: SpendBudgets | None,
        costs: CostEstimates | None,
    ) -> None:
        self._guards = guards
        self._budgets = budgets
        self._costs = costs
        self.skipped: dict[str, int] = {"slo": 0, "spend": 0}
        # Budgets found used up under the refuse policy: key -> (until, error). Admission
        # refuses new events on them until the window ends, instead of accepting work that
        # could only die at this step.
        self._refusing: dict[str, tuple[float, str]] = {}

    def check(self, workflow: str, tenant: str) -> None:
        """Refuse a new event (AdmissionError) while its workflow's or tenant's budget is out."""
        if not self._refusing:
            return
        now = time.monotonic()
        for key in (f"workflow:{workflow}", f"tenant:{tenant}"):
            entry = self._refusing.get(key)
            if entry is None:
                continue
            until, message = entry
            if now < until:
                raise AdmissionError(message, retry_after=until - now)
            del self._refusing[key]

    async def allow(
        self, workflow: str, tenant: str, model: str, estimate: float | None = None
    ) -> Hold | str:
        """A :class:`Hold` to escalate to ``model`` now, or why not (``slo``, ``spend``)."""
        if self._guards is not None and self._guards.degraded(workflow):
            self.skipped["slo"] += 1
            return "slo"
        return await self.reserve(workflow, tenant, model, estimate)

    async def reserve(
        self, workflow: str, tenant: str, model: str, estimate: float | None = None
    ) -> Hold | str:
        """Hold one call of ``model`` against the workflow's and the tenant's budgets.

        Returns the :class:`Hold`, or ``spend`` when a ``degrade`` budget is used up (the
        caller takes its cheaper path); raises a non-retryable :class:`StepError` with the
        budget's message when a ``refuse`` budget is, and admission refuses that budget until
        its window ends.
        """
        if self._budgets is None or self._costs is None:
            return Hold(())
        amount = self._costs.of(model, estimate)
        held: list[Reservation] = []
        try:
            for key in (f"workflow:{workflow}", f"tenant:{tenant}"):
                held.append(await self._budgets.reserve(key, amount))
        except BudgetExhaustedError as exc:
            for reservation in held:
                await reservation.release()
            if exc.degrade:
                self.skipped["spend"] += 1
                return "spend"
            if len(self._refusing) >= _MAX_REFUSING:
                self._refusing.clear()  # forgetting only costs events that die at the step
            self._refusing[exc.key] = (time.monotonic() + exc.retry_after, str(exc))
            raise StepError(str(exc), retryable=False) from exc
        return Hold(tuple(held), self._costs, model)
