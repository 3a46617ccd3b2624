"""Steps of the greet workflow."""

from __future__ import annotations

from sluice.workflow import JSONObject, StepContext


async def normalise(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Collapse whitespace and capitalise each word of the name."""
    return {"name": " ".join(part.capitalize() for part in data["name"].split())}


async def greet(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Build the greeting."""
    return {"greeting": f"Hello, {data['name']}!", "tenant": ctx.tenant}
