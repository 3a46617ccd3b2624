"""The ``classify`` built-in step: a cascade of models labels the text.

Workflow use::

    - name: classify
      pool: inference
      uses: classify
      options:
        field: text                 # the text to classify
        cascade:                    # cheapest first; `sluice tune` rewrites the thresholds
          - {model: small, threshold: 0.62}
          - {model: large}
        degrade_to: rules           # optional: answers when a degrade budget will not hold
                                    # even the first tier (required for a one-tier cascade
                                    # under a degrade budget, checked when the app loads)

Adds ``intent``, ``confidence``, ``escalated``, ``tiers`` (the models asked), ``model`` (the
one that answered) and ``cost`` (of every call made) to the data, and ``degraded`` when an
escalation the answer needed was skipped: ``slo`` (the workflow's SLO guard was degrading),
``spend`` (a spend budget with the degrade policy was used up), ``breaker`` or ``bulkhead``
(the costly model's breaker was open or its ``max_in_flight`` calls were running, so the cheap
answer stands: one call in ``tiers`` and the ledger, not two). Each is counted in
``sluice_model_fallbacks`` by reason and the model that was not asked. A budget used up under the
refuse policy fails the step with the budget's error, and admission refuses new events on it.

Every call is held against the spend budgets before it goes out, the first tier's included, at
its estimated cost (:mod:`sluice.models.estimate`), and settled at its real cost after. When a
``degrade`` budget will not hold the first tier, ``degrade_to`` answers (``degraded: spend``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sluice.errors import ConfigError, StepError
from sluice.governance.routing import Routing
from sluice.models.base import Model, ModelRequest, ModelResult
from sluice.models.cascade import Cascade, Escalate, Held
from sluice.models.estimate import cost_bound
from sluice.models.guarded import call_deadline
from sluice.models.prices import money
from sluice.workflow.context import StepContext
from sluice.workflow.model import JSONObject

if TYPE_CHECKING:
    from sluice.reliability.escalation import EscalationGate
    from sluice.telemetry.alerts import Alerts
    from sluice.telemetry.metrics import Metrics
    from sluice.telemetry.tracing import Telemetry


async def classify(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Label ``data[field]`` with the configured cascade."""
    tiers: Any = ctx.options.get("cascade")
    if not isinstance(tiers, list) or not tiers:
        raise StepError(f"step {ctx.step!r}: options.cascade lists the tiers", retryable=False)
    try:
        cascade: Cascade = ctx.service("cascades").get(tiers)
    except ConfigError as exc:
        raise StepError(f"step {ctx.step!r}: {exc}", retryable=False) from exc
    field = str(ctx.options.get("field", "text"))
    text = data.get(field)
    if not isinstance(text, str) or not text.strip():
        raise StepError(f"step {ctx.step!r}: data.{field} must be non-empty text", retryable=False)
    request = ModelRequest(text=text)
    degrade_to = _degrade_to(ctx)
    # The app's services by name (ctx.services): each typed here as the app wires it.
    gate: EscalationGate | None = ctx.services.get("escalation")
    escalate: Escalate | None = None
    first: Escalate | None = None
    if gate is not None:  # spend budgets hold every call; the SLO guard may keep the cheap one
        models = {tier.model.name: tier.model for tier in cascade.tiers}
        if degrade_to is not None:
            models[degrade_to.name] = degrade_to

        async def reserve(model: str) -> Held | str:
            estimate = cost_bound(models[model], request)
            held: Held | str = await gate.reserve(ctx.workflow, ctx.tenant, model, estimate)
            return held

        async def allow(model: str) -> Held | str:
            estimate = cost_bound(models[model], request)
            held: Held | str = await gate.allow(ctx.workflow, ctx.tenant, model, estimate)
            return held

        first, escalate = reserve, allow

    routing: Routing | None = ctx.services.get("routing")
    if routing is not None:  # the managed routing rules: a refused tier fails the step
        first, escalate = _routed(routing, ctx, first), _routed(routing, ctx, escalate)
    telemetry: Telemetry | None = ctx.services.get("telemetry")
    on_call = None
    if telemetry is not None:  # the cost ledger: one row per call as made, cache hits at zero

        def on_call(call: ModelResult) -> None:
            telemetry.record_costs(ctx.event_id, ctx.tenant, ctx.workflow, ctx.step, [call])

    # Guarded tiers retry only while the event's budget allows.
    with call_deadline(ctx.deadline):
        outcome = await cascade.run(
            request, escalate, first=first, degrade_to=degrade_to, on_call=on_call
        )
    final = outcome.result
    if telemetry is not None and telemetry.settings.log_prompts:  # opt-in; masked by the logger
        ctx.logger.info("classify prompt: %s", text, extra={"event_id": ctx.event_id})
    metrics: Metrics | None = ctx.services.get("metrics")
    if metrics is not None:
        tenant, flag = metrics.tenant(ctx.tenant), metrics.flag(ctx.flag)
        for call in outcome.steps:
            series = metrics.model_series(tenant, ctx.workflow, ctx.version, ctx.step,
                                          call.model, flag)  # fmt: skip
            series.count(call.cost, call.usage.input_tokens, call.usage.output_tokens)
        if outcome.escalated:
            metrics.escalations.labels(tenant, ctx.workflow, ctx.version, flag).inc()
        if outcome.skipped is not None:
            wanted = outcome.skipped_model or ""
            metrics.fallbacks.labels(
                ctx.workflow, ctx.version, ctx.step, wanted, outcome.skipped
            ).inc()
    alerts: Alerts | None = ctx.services.get("alerts")
    if alerts is not None:  # cost and token spikes against a rolling baseline
        alerts.record(ctx.workflow, outcome.steps)
    return {
        **data,
        "intent": final.label,
        "confidence": round(final.confidence, 4),
        "escalated": outcome.escalated,
        "tiers": list(outcome.tiers_run),
        "model": final.model,
        "cost": money(sum(step.cost for step in outcome.steps)),
        **({"degraded": outcome.skipped} if outcome.skipped else {}),
    }


class _Free:
    """What a tier holds when only the routing rules were asked: nothing."""

    async def commit(self, actual: float) -> None:
        """Nothing to settle."""

    async def release(self) -> None:
        """Nothing to release."""


def _routed(routing: Routing, ctx: StepContext, hook: Escalate | None) -> Escalate:
    """``hook`` (a spend hold, or nothing), asked only once the routing rules allow the tier's
    model; :class:`~sluice.governance.routing.ModelNotAllowedError` names the rule otherwise."""

    async def ask(model: str) -> Held | str:
        await routing.check_step_model(model, tenant=ctx.tenant, workflow=ctx.workflow)
        return _Free() if hook is None else await hook(model)

    return ask


def _degrade_to(ctx: StepContext) -> Model | None:
    """The model named by ``options.degrade_to``, if any (its name is checked at load)."""
    name = ctx.options.get("degrade_to")
    if name is None:
        return None
    # The models service itself: ctx.service("models") is the metered view for custom steps,
    # and the cascade holds this call against the budgets already.
    models: Mapping[str, Model] = ctx.services.get("models") or {}
    model = models.get(str(name))
    if model is None:
        raise StepError(f"step {ctx.step!r}: options.degrade_to: no model {name!r}",
                        retryable=False)  # fmt: skip
    return model
