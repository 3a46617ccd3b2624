"""The models as a step sees them: every call held against the spend budgets and accounted for.

A custom step calls a model through the services, like the built-in steps do::

    async def summarize(ctx, data):
        models = ctx.service("models")                    # this view, bound to the event
        result = await models["llm"].predict(ModelRequest(text=data["text"], labels=LABELS))
        return {**data, "label": result.label, "degraded": result.fallback}

Each call:

1. is checked against the managed routing rules (:mod:`sluice.governance.routing`): a model
   the tenant or the workflow may not use fails the step with the rule's path, not retried;
2. is held against the workflow's and the tenant's spend budgets at its estimated cost
   (:mod:`sluice.models.estimate`) before it goes out;
3. runs under the event's deadline, in a model span;
4. is settled with its real cost (or released if it failed), written to the cost ledger (one
   row, cache hits at zero) and counted in the model metrics.

When a ``refuse`` budget is used up the call raises the budget's error (the step fails, is
dead-lettered and replayable; admission refuses the budget until its window ends). When a
``degrade`` budget is, the step's ``options.degrade_to`` model answers instead, held and
accounted the same way, its result marked ``fallback == "spend"``; without one the call fails
with an error naming the setting.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sluice.errors import StepError
from sluice.models.base import Model, ModelRequest, ModelResult
from sluice.models.estimate import cost_bound
from sluice.models.guarded import call_deadline
from sluice.telemetry.call_spans import model_span, record_model_result

if TYPE_CHECKING:
    from sluice.governance.routing import Routing
    from sluice.reliability.escalation import EscalationGate
    from sluice.telemetry.metrics import Metrics
    from sluice.telemetry.tracing import Telemetry
    from sluice.workflow.context import StepContext


class MeteredModels(dict[str, Model]):
    """The ``models`` service: models by name; ``ctx.service("models")`` gets each step a
    :class:`StepModels` view of them (:class:`~sluice.workflow.context.StepBound`)."""

    def for_step(self, ctx: StepContext) -> StepModels:
        """The models as the step ``ctx`` runs may call them: budgeted and ledgered."""
        return StepModels(ctx, self)


class StepModels(Mapping[str, "MeteredModel"]):
    """The app's models for one step of one event; each call is budgeted and ledgered."""

    def __init__(self, ctx: StepContext, models: Mapping[str, Model]) -> None:
        self._ctx = ctx
        self._models = models

    def __getitem__(self, name: str) -> MeteredModel:
        try:
            model = self._models[name]
        except KeyError:
            raise StepError(
                f"step {self._ctx.step!r}: no model {name!r} (models: {', '.join(self._models)})",
                retryable=False,
            ) from None
        return MeteredModel(self._ctx, model, self._models)

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    async def predict(self, name: str, request: ModelRequest) -> ModelResult:
        """``self[name].predict(request)``."""
        return await self[name].predict(request)


class MeteredModel:
    """One model called on behalf of one step: a :class:`Model` whose calls are accounted for."""

    def __init__(self, ctx: StepContext, model: Model, models: Mapping[str, Model]) -> None:
        self._ctx = ctx
        self._model = model
        self._models = models

    @property
    def name(self) -> str:
        """The model's name."""
        return self._model.name

    @property
    def version(self) -> str:
        """The model's version."""
        return self._model.version

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Hold the call against the budgets, make it, settle it and write it to the ledger."""
        result = await self._call(self._model, request)
        if result is None:  # a degrade budget is used up: the declared cheaper path answers
            fallback = self._degrade_to()
            result = await self._call(fallback, request)
            if result is None:
                raise StepError(
                    f"step {self._ctx.step!r}: neither {self.name!r} nor its degrade_to"
                    f" {fallback.name!r} fits the spend budgets",
                    retryable=False,
                )
            result = replace(result, fallback="spend")
        return result

    async def _call(self, model: Model, request: ModelRequest) -> ModelResult | None:
        """The call, held and settled; None when a degrade budget will not hold it."""
        ctx = self._ctx
        routing: Routing | None = ctx.services.get("routing")
        if routing is not None:  # the managed routing rules: a refusal fails the step
            await routing.check_step_model(model.name, tenant=ctx.tenant, workflow=ctx.workflow)
        gate: EscalationGate | None = ctx.services.get("escalation")
        held: Any = None
        if gate is not None:
            estimate = cost_bound(model, request)
            held = await gate.reserve(ctx.workflow, ctx.tenant, model.name, estimate)
            if isinstance(held, str):
                return None
        try:
            with call_deadline(ctx.deadline), model_span(model) as span:
                if request.template is not None and span is not None:
                    span.set_attribute("sluice.prompt.template", request.template)
                result = await model.predict(request)
                record_model_result(span, result)
        except BaseException:
            if held is not None:
                await held.release()
            raise
        if held is not None:
            await held.commit(result.cost)
        self._account(result, request.template)
        return result

    async def try_predict(self, request: ModelRequest) -> ModelResult | None:
        """The call, held, settled and ledgered; None when a ``degrade`` budget will not hold
        it (the caller takes its own cheaper path). A ``refuse`` budget raises its error."""
        return await self._call(self._model, request)

    def _degrade_to(self) -> Model:
        name = self._ctx.options.get("degrade_to")
        if name is None:
            raise StepError(
                f"step {self._ctx.step!r}: a spend budget with on_exhausted: degrade is used up"
                f" and the step declares no cheaper path for {self.name!r}: set its"
                " options.degrade_to to a model",
                retryable=False,
            )
        model = self._models.get(str(name))
        if model is None:
            raise StepError(f"step {self._ctx.step!r}: options.degrade_to: no model {name!r}",
                            retryable=False)  # fmt: skip
        return model

    def _account(self, result: ModelResult, template: str | None = None) -> None:
        """The cost ledger and the model metrics, as the classify step writes them."""
        ctx = self._ctx
        telemetry: Telemetry | None = ctx.services.get("telemetry")
        if telemetry is not None:
            telemetry.record_costs(
                ctx.event_id, ctx.tenant, ctx.workflow, ctx.step, [result], template
            )
        metrics: Metrics | None = ctx.services.get("metrics")
        if metrics is not None:
            tenant, flag = metrics.tenant(ctx.tenant), metrics.flag(ctx.flag)
            series = metrics.model_series(tenant, ctx.workflow, ctx.version, ctx.step,
                                          result.model, flag)  # fmt: skip
            series.count(result.cost, result.usage.input_tokens, result.usage.output_tokens)
