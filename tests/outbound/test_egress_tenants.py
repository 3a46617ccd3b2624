"""A tenant's allowlist at run time: the deliver step reaches a host for that tenant only."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.store.base import EventState
from sluice.testing.servers import AsgiServer
from tests.conftest import MakeApp

SECRET = "whsec_" + base64.b64encode(b"t" * 24).decode()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[int, list[str]]]:
    """A real HTTP receiver recording each delivery's tenant."""
    tenants: list[str] = []

    async def hook(request: Request) -> Response:
        body = await request.json()
        tenants.append(body["tenant"])
        return Response(status_code=200)

    async with AsgiServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as server:
        yield server.port, tenants


async def test_a_tenants_hosts_serve_that_tenant_only(
    make_app: MakeApp, receiver: tuple[int, list[str]]
) -> None:
    """acme's events are delivered; another tenant's event dead-letters with the reason."""
    port, tenants = receiver
    config = f"""
    store: sqlite:///.sluice/tenants.db
    pools: {{post: {{concurrency: 2}}}}
    runtime: {{poll_ms: 20}}
    outbound:
      allow_private: ["127.0.0.1/32"]
      tenants: {{acme: {{allow: ["127.0.0.1:{port}"]}}}}
    """
    workflow = f"""
    name: ship
    steps:
      - name: deliver
        pool: post
        uses: deliver
        options: {{url: "http://127.0.0.1:{port}/hook", secret_env: SLUICE_HOOK_SECRET}}
    """
    app_dir = make_app(config, {"ship.yaml": workflow})
    settings = load_settings(app_dir, environ={"SLUICE_HOOK_SECRET": SECRET})
    async with SluiceApp.from_settings(settings) as app:
        ok = await app.runtime.wait(await app.runtime.submit("ship", {"x": 1}, tenant="acme"), 10)
        other = await app.runtime.wait(
            await app.runtime.submit("ship", {"x": 2}, tenant="globex"), 10
        )
    assert ok.state is EventState.DONE, ok.error
    assert other.state is EventState.DEAD
    assert f"127.0.0.1:{port} is not on the allowlist" in (other.error or "")
    assert tenants == ["acme"]
