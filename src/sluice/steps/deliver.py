"""The ``deliver`` step: the event's result, and optionally a signed outbound webhook.

The result is what the step returns (the store keeps it with the event). With ``options.url``
the result is also POSTed there, signed with the Standard Webhooks scheme under the secret in
``options.secret_env`` (an ``SLUICE_*`` variable), with ``webhook-id`` set to the step's
idempotency key so a receiver can drop the repeat of an at-least-once delivery. The URL must
pass the app's egress policy (docs/security.md), for the event's tenant::

    outbound:
      allow: ["hooks.example.com", "127.0.0.1:9000"]
      allow_private: ["127.0.0.1/32"]     # a receiver on this machine, for development
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import orjson
from opentelemetry.trace import SpanKind

from sluice.errors import StepError
from sluice.outbound.policy import EgressDeniedError
from sluice.outbound.webhooks import post_signed, signed_headers
from sluice.telemetry.tracing import fail, outbound_headers, span
from sluice.workflow.context import StepContext
from sluice.workflow.model import JSONObject

if TYPE_CHECKING:
    from sluice.outbound.egress import Egress
    from sluice.reliability.breaker import BreakerRegistry


async def deliver(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Finish the event with ``data`` (minus bulky retrieval context), sending it if asked."""
    result = {k: v for k, v in data.items() if k not in ctx.options.get("drop", ())}
    url = ctx.options.get("url")
    if not url:
        return result
    egress: Egress = ctx.service("egress")
    try:  # the allowlist before signing anything; addresses are checked at connection
        egress.policy.admit(str(url), ctx.tenant)
    except EgressDeniedError as exc:
        raise StepError(f"deliver: {exc}", retryable=False) from exc
    secret = egress.secrets.get(str(ctx.options.get("secret_env", "")))
    if not secret:
        raise StepError("deliver: options.secret_env names no configured secret", retryable=False)
    body = orjson.dumps({"event_id": ctx.event_id, "tenant": ctx.tenant, "result": result})
    stamp = int(time.time())
    headers = signed_headers(secret, ctx.idempotency_key, stamp, body)
    session: aiohttp.ClientSession = egress.session()
    target = urlsplit(str(url))
    port = target.port or (443 if target.scheme == "https" else 80)
    attributes: dict[str, str | int] = {
        "http.request.method": "POST", "server.address": target.hostname or "", "server.port": port,
    }  # fmt: skip
    with span("POST", attributes, SpanKind.CLIENT) as current:
        # The receiver continues the event's trace from this call.
        headers.update(outbound_headers())
        breakers: BreakerRegistry | None = ctx.services.get("breakers")
        try:
            if breakers is None:
                status = await post_signed(session, str(url), body, headers, tenant=ctx.tenant)
            else:
                # A receiver that keeps failing is not called until its breaker half-opens:
                # the step fails fast with the breaker's retry-after instead.
                async with breakers.get(f"webhook:{target.hostname}").guard():
                    status = await post_signed(session, str(url), body, headers, tenant=ctx.tenant)
        except StepError as exc:
            fail(current, exc)
            raise
        if current is not None:
            current.set_attribute("http.response.status_code", status)
    return {**result, "delivered_to": str(url)}
