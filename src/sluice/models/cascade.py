"""A cascade of models: ask the cheapest first, escalate only when it is unsure.

Tiers are ordered from cheapest to most capable. Each tier but the last has a threshold: its
answer is accepted when its confidence is at least the threshold, otherwise the next tier is
asked. The last tier's answer is always final. Thresholds are tuned from a golden set with
:func:`sluice.models.tuning.tune_thresholds`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from sluice.errors import ConfigError, StepError
from sluice.models.base import Model, ModelRequest, ModelResult
from sluice.models.guarded import GuardedModel
from sluice.telemetry.call_spans import model_span, record_model_result


@dataclass(frozen=True, slots=True)
class Tier:
    """One step of a cascade: a model and the confidence at which its answer is accepted."""

    model: Model
    threshold: float = 0.0


class Held(Protocol):
    """What an escalation holds while a costly tier runs (spend reservations, say)."""

    async def commit(self, actual: float) -> None:
        """The call happened and cost ``actual``."""

    async def release(self) -> None:
        """The call failed: nothing was spent."""


#: Asked before a tier runs with the tier's model name: something to hold while it runs (spend
#: reservations), or the reason (a short word: ``slo``, ``spend``) not to call it.
Escalate = Callable[[str], Awaitable[Held | str]]


@dataclass(frozen=True, slots=True)
class CascadeResult:
    """What a cascade did for one request.

    ``result`` is the final answer; ``steps`` holds every tier's answer in the order asked;
    ``latency_ms`` is the wall-clock time of the whole cascade.
    """

    result: ModelResult
    steps: tuple[ModelResult, ...]
    latency_ms: float
    #: Why a wanted escalation did not happen: ``slo`` or ``spend`` (not asked), ``breaker`` or
    #: ``bulkhead`` (the tier's guard answered with the answer already given).
    skipped: str | None = None
    skipped_model: str | None = None  # the model the cascade wanted to escalate to

    @property
    def tiers_run(self) -> tuple[str, ...]:
        """Names of the models that were asked, in order."""
        return tuple(step.model for step in self.steps)

    @property
    def escalated(self) -> bool:
        """Whether any tier past the first was asked."""
        return len(self.steps) > 1

    @property
    def cost(self) -> float:
        """Total cost of every call made."""
        return sum(step.cost for step in self.steps)


class Cascade:
    """Ordered tiers of models; also a :class:`Model` itself, so it nests and caches alike.

    ``run`` returns the full :class:`CascadeResult`; ``predict`` returns the final answer with
    the cascade's total cost and latency and, in ``output``, the tiers that ran.
    """

    def __init__(self, tiers: Sequence[Tier], *, name: str = "cascade") -> None:
        if not tiers:
            raise ConfigError("a cascade needs at least one tier")
        problems = [
            f"tiers[{i}].threshold: must be within 0..1, got {tier.threshold}"
            for i, tier in enumerate(tiers[:-1])
            if not 0.0 <= tier.threshold <= 1.0
        ]
        if problems:
            raise ConfigError("invalid cascade", problems)
        self.tiers = tuple(tiers)
        self._name = name

    @property
    def name(self) -> str:
        """The cascade's name."""
        return self._name

    @property
    def version(self) -> str:
        """Every tier's model, version and threshold: a change to any is a new version."""
        return "|".join(
            f"{tier.model.name}@{tier.model.version}>={tier.threshold:g}" for tier in self.tiers
        )

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Thresholds of every tier but the last, in order."""
        return tuple(tier.threshold for tier in self.tiers[:-1])

    async def run(
        self,
        request: ModelRequest,
        escalate: Escalate | None = None,
        *,
        first: Escalate | None = None,
        degrade_to: Model | None = None,
        on_call: Callable[[ModelResult], None] | None = None,
    ) -> CascadeResult:
        """Ask tiers in order until one is confident enough (the last always is).

        ``escalate``, when given, is asked before every tier past the first; a reason instead
        of a hold keeps the answer so far (an SLO slipping, a spend budget used up). A guarded
        tier whose breaker or bulkhead sends it to its fallback gets the answer so far and
        gives it back: no second call, the answer stands, ``skipped`` says why.

        ``first``, when given, is asked before the first tier (and before ``degrade_to``): the
        spend budgets hold every call, not only escalations. When it answers with a reason
        there is no answer so far: ``degrade_to`` answers instead (``skipped`` says why), and
        without one the step fails, naming the setting that would have given it a way out.

        ``on_call`` is told of each call as soon as it is made, so calls made before a later
        tier is refused (the step then fails) still reach the cost ledger.
        """
        started = time.perf_counter()
        steps: list[ModelResult] = []
        skipped: str | None = None
        skipped_model: str | None = None
        last = len(self.tiers) - 1
        for index, tier in enumerate(self.tiers):
            held = None
            ask = first if index == 0 else escalate
            if ask is not None:
                granted = await ask(tier.model.name)
                if isinstance(granted, str):
                    skipped, skipped_model = granted, tier.model.name
                    if index == 0:
                        steps.append(await self._degrade(request, granted, first, degrade_to))
                        if on_call is not None:
                            on_call(steps[-1])
                    break
                held = granted
            try:
                with model_span(tier.model) as span:
                    result = await self._ask(tier.model, request, steps[-1] if steps else None)
                    record_model_result(span, result)
            except BaseException:
                if held is not None:
                    await held.release()
                raise
            if result.fallback is not None:
                if held is not None:
                    await held.release()  # the costly model was not called: nothing spent
                skipped, skipped_model = result.fallback, tier.model.name
                if not steps or result.model != steps[-1].model:
                    steps.append(result)  # a fallback that is not the answer so far: a call
                    if on_call is not None:
                        on_call(result)
                break
            if held is not None:
                await held.commit(result.cost)
            steps.append(result)
            if on_call is not None:
                on_call(result)
            if index == last or result.confidence >= tier.threshold:
                break
        return CascadeResult(
            result=steps[-1],
            steps=tuple(steps),
            latency_ms=(time.perf_counter() - started) * 1000,
            skipped=skipped,
            skipped_model=skipped_model,
        )

    async def _degrade(
        self, request: ModelRequest, reason: str, first: Escalate | None, to: Model | None
    ) -> ModelResult:
        """The declared cheaper path's answer when the first tier may not be called."""
        if to is None:
            raise StepError(
                f"cascade {self.version}: its first tier {self.tiers[0].model.name!r} may not be"
                f" called ({reason}: a budget with on_exhausted: degrade is used up) and no"
                " cheaper path is declared: set the step's options.degrade_to to a model",
                retryable=False,
            )
        granted = await first(to.name) if first is not None else None
        if isinstance(granted, str):
            raise StepError(
                f"cascade {self.version}: neither its first tier nor degrade_to {to.name!r} fits"
                f" the spend budgets ({granted})",
                retryable=False,
            )
        try:
            with model_span(to) as span:
                result = await to.predict(request)
                record_model_result(span, result)
        except BaseException:
            if granted is not None:
                await granted.release()
            raise
        if granted is not None:
            await granted.commit(result.cost)
        return replace(result, fallback=reason)

    @staticmethod
    async def _ask(model: Model, request: ModelRequest, so_far: ModelResult | None) -> ModelResult:
        if isinstance(model, GuardedModel):  # its fallback may be the answer so far
            return await model.predict(request, answered=so_far)
        return await model.predict(request)

    async def predict(self, request: ModelRequest) -> ModelResult:
        """The final answer, costed and timed for the whole cascade."""
        outcome = await self.run(request)
        final = outcome.result
        return ModelResult(
            model=final.model,
            output={
                **final.output,
                "tiers": list(outcome.tiers_run),
                "escalated": outcome.escalated,
            },
            label=final.label,
            confidence=final.confidence,
            usage=final.usage,
            cost=outcome.cost,
            latency_ms=outcome.latency_ms,
        )
