"""The managed routing rules on the AI gateway, over HTTP: a model an API key or a tenant may
not use is a 403 problem+json naming the rule (which the official client reads too); a
provider the rules refuse is skipped in the group's fallback order."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from sluice.governance.routing import Routing
from tests.ai_gateway.conftest import StackFactory, sim_stats

BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "my card has not arrived"}]}


def _key_id(key: str) -> str:
    return key.split("_")[1]


async def _set(routing: Routing, rules: dict[str, Any]) -> None:
    await routing.set(rules, "test")


async def test_a_key_asks_for_a_model_it_may_not_use(make_stack: StackFactory) -> None:
    """keys.ID.models lists what one API key may ask for: anything else is 403, the rule named;
    the other tenant's key is not bound by it; nothing reached a provider."""
    stack = await make_stack()
    acme = _key_id(stack.keys["acme"])
    await _set(stack.app.services["routing"], {"keys": {acme: {"models": ["solo"]}}})
    async with stack.http() as http:
        refused = await http.post("/v1/chat/completions", json={**BODY, "model": "chat"},
                                  headers=stack.auth("acme"))  # fmt: skip
        allowed = await http.post("/v1/chat/completions", json={**BODY, "model": "solo"},
                                  headers=stack.auth("acme"))  # fmt: skip
        other = await http.post("/v1/chat/completions", json={**BODY, "model": "chat"},
                                headers=stack.auth("other"))  # fmt: skip
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/model-not-allowed")
    assert problem["rule"] == f"keys.{acme}.models"
    assert "does not allow model 'chat' (allowed: solo)" in problem["detail"]
    assert problem["error"]["code"] == "model_not_allowed"
    assert (allowed.status_code, other.status_code) == (200, 200)
    assert (await sim_stats(stack.backup))["requests"] == 0


async def test_the_official_client_reads_the_refusal(make_stack: StackFactory) -> None:
    """OpenAI's client raises PermissionDeniedError with the rule's message."""
    stack = await make_stack()
    await _set(stack.app.services["routing"], {"tenants": {"acme": {"models": ["solo"]}}})
    async with stack.client("acme") as client:
        with pytest.raises(openai.PermissionDeniedError, match=r"tenants\.acme\.models"):
            await client.chat.completions.create(model="chat", messages=BODY["messages"])


async def test_refused_providers_are_skipped_then_refused(make_stack: StackFactory) -> None:
    """A tenant limited to providers none of the group's deployments is on: 403 naming the
    providers rule; a "*" rule binds every tenant not named; removing the rules lets all in."""
    stack = await make_stack()
    routing: Routing = stack.app.services["routing"]
    await _set(routing, {"tenants": {"*": {"providers": ["api.openai.com"]},
                                     "acme": {"providers": ["127.0.0.1"]}}})  # fmt: skip
    async with stack.http() as http:
        acme = await http.post("/v1/chat/completions", json={**BODY, "model": "chat"},
                               headers=stack.auth("acme"))  # fmt: skip
        other = await http.post("/v1/chat/completions", json={**BODY, "model": "chat"},
                                headers=stack.auth("other"))  # fmt: skip
        await _set(routing, {})
        later = await http.post("/v1/chat/completions", json={**BODY, "model": "chat"},
                                headers=stack.auth("other"))  # fmt: skip
    assert acme.status_code == 200
    assert other.status_code == 403
    assert other.json()["rule"] == "tenants.*.providers"
    assert "provider '127.0.0.1'" in other.json()["detail"]
    assert later.status_code == 200
