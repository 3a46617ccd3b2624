"""Steps of the triage workflow that belong to this app rather than to Sluice."""

from __future__ import annotations

from typing import Any

from sluice.errors import StepError
from sluice.workflow import JSONObject, StepContext

#: Retrieved tickets shown to the model as examples.
_EXAMPLES = 3


async def draft(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Draft a reply: with ``options.prompt`` (a template of ``prompts/``) and ``options.model``
    (an LLM of the app), the model adapts the intent's knowledge-base reply; otherwise, or
    while the LLM path is degraded (a spend budget, an open breaker, a failing provider), the
    knowledge-base reply as it is.

    Neighbours that were resolved under the same intent confirm a local draft; when none did,
    it is marked for an agent's review rather than sent as it is. An LLM draft says itself
    whether it needs review (``needs_review`` of the template's output schema).
    """
    templates = ctx.service("files").yaml(str(ctx.options.get("templates", "kb/templates.yaml")))
    intent = data.get("intent")
    template = templates.get(intent) if isinstance(intent, str) else None
    neighbours = data.get("neighbours") or []
    agreeing = [n for n in neighbours if n.get("intent") == intent]
    reply = template or "Thanks for getting in touch. An agent will look at your request shortly."
    local = {
        "reply": reply,
        "review": not agreeing or template is None or not data.get("confidence", 0) >= 0.5,
        "similar_tickets": [n.get("id") for n in agreeing],
    }
    prompt = ctx.options.get("prompt")
    if prompt is None or ctx.services.get("generate") is None:
        return {**data, "draft": local}
    values = {
        "ticket": data.get("text", ""),
        "intent": str(intent or "unknown"),
        "kb_reply": reply,
        "examples": [_example(n) for n in neighbours[:_EXAMPLES]],
    }
    try:
        outcome = await ctx.service("generate")(str(prompt), values, model=ctx.options.get("model"))
    except StepError as exc:
        if not exc.retryable:  # a template or schema problem: the step fails, replayable
            raise
        ctx.logger.warning("draft: LLM path failed, local draft instead: %s", exc)
        return {**data, "draft": {**local, "degraded": "error"}}
    if outcome.value is None:  # a degrade budget held no call
        return {**data, "draft": {**local, "degraded": outcome.degraded}}
    return {
        **data,
        "draft": {
            "reply": outcome.value["reply"],
            "review": bool(outcome.value["needs_review"]),
            "reason": outcome.value.get("reason", ""),
            "similar_tickets": local["similar_tickets"],
            "model": outcome.model,
            "template": outcome.template,
            "cost": outcome.cost,
        },
    }


def _example(neighbour: Any) -> dict[str, Any]:
    """A retrieved ticket as the template's examples take it: text, intent, resolution."""
    fields = ("text", "intent", "resolution")
    return {k: neighbour[k] for k in fields if isinstance(neighbour, dict) and k in neighbour}
