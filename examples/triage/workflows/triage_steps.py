"""Steps of the triage workflow that belong to this app rather than to Sluice."""

from __future__ import annotations

from sluice.workflow import JSONObject, StepContext


async def draft(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Draft a reply from the intent's knowledge-base template.

    Neighbours that were resolved under the same intent confirm the template; when none did,
    the draft is marked for an agent's review rather than sent as it is.
    """
    templates = ctx.service("files").yaml(str(ctx.options.get("templates", "kb/templates.yaml")))
    intent = data.get("intent")
    template = templates.get(intent) if isinstance(intent, str) else None
    neighbours = data.get("neighbours") or []
    agreeing = [n for n in neighbours if n.get("intent") == intent]
    reply = template or "Thanks for getting in touch. An agent will look at your request shortly."
    return {
        **data,
        "draft": {
            "reply": reply,
            "review": not agreeing or template is None or not data.get("confidence", 0) >= 0.5,
            "similar_tickets": [n.get("id") for n in agreeing],
        },
    }
