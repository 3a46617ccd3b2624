"""An app with the ingress gateway, an API key and a signed webhook source."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.ingress import intake
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.settings import parse_ingress
from sluice.outbound.signing import decode_secret, sign
from tests.conftest import MakeApp

SECRET_OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()
SECRET_NEW = "whsec_" + base64.b64encode(b"n" * 24).decode()
ENCRYPTION_KEY = base64.b64encode(b"k" * 32).decode()

CONFIG = f"""
store: sqlite:///.sluice/ingress.db
pools:
  cpu: {{concurrency: 4, queue_limit: 50}}
runtime: {{poll_ms: 20}}
encryption: {{active: k1, keys: {{k1: {ENCRYPTION_KEY}}}}}
rate_limits:
  default: {{rate: 1000, burst: 1000}}
  tenants:
    slow: {{rate: 1, burst: 2}}
sources:
  helpdesk:
    workflow: tickets
    tenant: acme
    secrets: [{SECRET_OLD}, {SECRET_NEW}]
    mapping:
      text: $.ticket.description
      subject: {{path: $.ticket.subject, default: ""}}
      email: {{path: $.requester.email, transform: lower}}
"""
WORKFLOW = """
name: tickets
input_schema:
  type: object
  required: [text]
  properties:
    text: {type: string, minLength: 1}
    subject: {type: string}
    email: {type: string}
pii:
  fields: [text, subject]
  keep_original: true
steps:
  - {name: keep, pool: cpu, uses: noop}
"""


@dataclass
class Ingress:
    """What ingress tests need: a client, the app, a key per tenant, and a signer."""

    http: httpx.AsyncClient
    app: SluiceApp
    gateway: intake.Ingress
    keys: dict[str, str]

    def auth(self, tenant: str = "acme") -> dict[str, str]:
        """The Authorization header for ``tenant``."""
        return {"authorization": f"Bearer {self.keys[tenant]}"}

    @staticmethod
    def signed(
        body: bytes, msg_id: str = "msg_1", secret: str = SECRET_NEW, ts: int | None = None
    ) -> dict[str, str]:
        """Standard Webhooks headers for ``body``."""
        stamp = int(time.time()) if ts is None else ts
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(decode_secret(secret), msg_id, stamp, body),
        }


@pytest.fixture
async def ingress(make_app: MakeApp) -> AsyncIterator[Ingress]:
    """A started app behind the full gateway, reached through the in-process ASGI client."""
    settings = load_settings(make_app(CONFIG, {"tickets.yaml": WORKFLOW}))
    app = SluiceApp.from_settings(settings)
    gateway = intake.Ingress(app, parse_ingress(settings))
    await app.start()
    keys = {}
    for tenant in ("acme", "other", "slow"):
        _, keys[tenant] = await create_api_key(app.store, tenant)
    transport = httpx.ASGITransport(app=create_http_app(app, gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield Ingress(http, app, gateway, keys)
    await app.stop()
