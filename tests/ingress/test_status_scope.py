"""``/v1/status``: operators see the deployment, a tenant's key sees a tenant-safe share."""

from __future__ import annotations

from typing import Any

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.ingress.apikeys import create_api_key
from sluice.reliability.breaker import BreakerRegistry
from tests.conftest import MakeApp
from tests.ingress.conftest import CONFIG
from tests.ingress.test_apikey_lifecycle import serving

GUARDED = """
name: tickets
input_schema: {type: object, required: [text], properties: {text: {type: string}}}
slo: {p95_ms: 500, error_rate: 0.1, window_s: 30, min_events: 5}
steps:
  - {name: keep, pool: cpu, uses: noop}
"""


async def test_tenant_keys_see_their_share_operators_see_all(make_app: MakeApp) -> None:
    """A tenant's key no longer reads pools, caches, guard windows, peers, alerts or the
    webhook breakers naming other tenants' receivers; an operator key reads all of it, and
    each guard names its min_events."""
    settings = load_settings(make_app(CONFIG, {"tickets.yaml": GUARDED}))
    app = SluiceApp.from_settings(settings)
    async with serving(lambda: app) as http:
        breakers = app.services["breakers"]
        assert isinstance(breakers, BreakerRegistry)
        breakers.get("model:large")
        breakers.get("webhook:hooks.other-tenant.example")
        _, tenant_key = await create_api_key(app.store, "acme")
        _, ops_key = await create_api_key(app.store, "ops", roles=["runner", "operator"])
        tenant: dict[str, Any] = (
            await http.get("/v1/status", headers={"authorization": f"Bearer {tenant_key}"})
        ).json()
        ops: dict[str, Any] = (
            await http.get("/v1/status", headers={"authorization": f"Bearer {ops_key}"})
        ).json()
    assert tenant["scope"] == "tenant"
    assert tenant["tenant"] == "acme"
    assert set(tenant) == {"scope", "tenant", "slo_guards", "breakers"}
    assert tenant["slo_guards"] == [
        {"workflow": "tickets", "state": "normal", "policy": "degrade", "retry_after": 0.0}
    ]
    assert [b["name"] for b in tenant["breakers"]] == ["model:large"]
    assert set(tenant["breakers"][0]) == {"name", "state", "retry_after"}

    assert ops["scope"] == "operator"
    assert {"pools", "caches", "breakers", "slo_guards", "slo_peers"} <= set(ops)
    assert [b["name"] for b in ops["breakers"]] == [
        "model:large",
        "webhook:hooks.other-tenant.example",
    ]
    (guard,) = ops["slo_guards"]
    assert guard["window"]["events"] == 0
    assert (guard["min_events"], guard["judging"]) == (5, False)
