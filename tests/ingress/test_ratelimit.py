"""Rate limits: a tenant's limit spans its workflows; per-workflow limits are explicit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.errors import ConfigError
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.ratelimit import RatePolicy
from sluice.ingress.settings import parse_ingress
from tests.conftest import MakeApp

# Rates far below one a second: no token comes back while a test runs, however slow the machine.
CONFIG = """
store: sqlite:///.sluice/rates.db
pools:
  cpu: {concurrency: 2, queue_limit: 50}
rate_limits:
  default: {rate: 1000, burst: 1000}
  tenants:
    t: {rate: 0.01, burst: 3}
  workflows:
    w/wf1: {rate: 0.01, burst: 2}
"""
WORKFLOW = """
name: {name}
steps:
  - {{name: keep, pool: cpu, uses: noop}}
"""


@pytest.fixture
async def client(make_app: MakeApp) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """Two workflows behind the gateway, and a key for tenants ``t`` and ``w``."""
    workflows = {f"{n}.yaml": WORKFLOW.format(name=n) for n in ("wf1", "wf2")}
    settings = load_settings(make_app(CONFIG, workflows))
    app = SluiceApp.from_settings(settings)
    gateway = Ingress(app, parse_ingress(settings))
    await app.start()
    keys = {t: (await create_api_key(app.store, t))[1] for t in ("t", "w")}
    transport = httpx.ASGITransport(app=create_http_app(app, gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http, keys
    await app.stop()


async def _codes(http: httpx.AsyncClient, key: str, workflow: str, n: int) -> list[int]:
    headers = {"authorization": f"Bearer {key}"}
    return [
        (await http.post(f"/v1/workflows/{workflow}/runs", json={}, headers=headers)).status_code
        for _ in range(n)
    ]


async def test_tenant_limit_spans_its_workflows(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    """``tenants.t: {burst: 3}`` admits 3 events in all, not 3 on each workflow."""
    http, keys = client
    codes = await _codes(http, keys["t"], "wf1", 3) + await _codes(http, keys["t"], "wf2", 3)
    assert codes == [202, 202, 202, 429, 429, 429]


async def test_workflow_limit_is_a_second_bucket(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    """``workflows.w/wf1`` limits that workflow only; the tenant's default limit still holds."""
    http, keys = client
    assert await _codes(http, keys["w"], "wf1", 3) == [202, 202, 429]
    resp = await http.post(
        "/v1/workflows/wf1/runs", json={}, headers={"authorization": f"Bearer {keys['w']}"}
    )
    assert resp.headers["content-type"] == "application/problem+json"
    assert "for 'wf1'" in resp.json()["detail"]
    assert await _codes(http, keys["w"], "wf2", 3) == [202, 202, 202]


def test_buckets_narrowest_first() -> None:
    """A workflow entry, then ``*/workflow``, then the tenant's bucket (else the default)."""
    policy = RatePolicy({
        "default": {"rate": 10},
        "tenants": {"a": {"rate": 5, "burst": 8}},
        "workflows": {"a/x": {"rate": 1}, "*/x": {"rate": 2}},
    })  # fmt: skip
    assert [(b.key, b.rate.rate) for b in policy.buckets("a", "x")] == [
        ("workflow:a/x", 1.0), ("tenant:a", 5.0)]  # fmt: skip
    assert [(b.key, b.rate.rate) for b in policy.buckets("b", "x")] == [
        ("workflow:b/x", 2.0), ("tenant:b", 10.0)]  # fmt: skip
    assert [b.key for b in policy.buckets("b", "y")] == ["tenant:b"]


def test_bad_sections_are_refused_at_load() -> None:
    """The old ``tenants: {T/W: ...}`` form, malformed keys and values name their path."""
    with pytest.raises(ConfigError) as caught:
        RatePolicy({
            "tenants": {"a/x": {"rate": 1}, "b": {"rate": 0}},
            "workflows": {"nope": {"rate": 1}, "a/x": "fast"},
            "per_ip": {},
        })  # fmt: skip
    problems = "\n".join(caught.value.problems)
    assert "rate_limits.tenants.a/x: a tenant limit covers all its workflows" in problems
    assert "rate_limits.tenants.b: rate must be > 0" in problems
    assert "rate_limits.workflows.nope: expected TENANT/WORKFLOW" in problems
    assert "rate_limits.workflows.a/x: expected {rate: N, burst: M}" in problems
    assert "rate_limits.per_ip: unknown setting" in problems
    policy = RatePolicy({"workflows": {"a/x": {"rate": 1}}})
    with pytest.raises(ConfigError, match="unknown workflow 'x'"):
        policy.check_workflows({"y"})
