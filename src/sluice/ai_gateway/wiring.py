"""The AI gateway as one of the app's services, built with the others by
:func:`sluice.services.build_services` when the app config has a ``gateway:`` section.

The services name this function instead of importing it: this package sits above them in the
layers (its routes mount on the app), like the built-in steps above the workflows that name
them.
"""

from __future__ import annotations

from sluice.ai_gateway.config import parse_gateway
from sluice.ai_gateway.metrics import GatewayMetrics
from sluice.ai_gateway.proxy import AiGateway
from sluice.config import AppSettings
from sluice.governance.routing import Routing
from sluice.kv.base import KV
from sluice.outbound.egress import app_policy
from sluice.reliability.breaker import BreakerRegistry
from sluice.reliability.spend import SpendBudgets
from sluice.services import GatewayServices
from sluice.telemetry.metrics import Metrics


def build_gateway_services(
    settings: AppSettings,
    kv: KV,
    breakers: BreakerRegistry,
    budgets: SpendBudgets | None,
    metrics: Metrics,
    routing: Routing | None = None,
) -> GatewayServices:
    """The AI gateway of the ``gateway:`` section and its response cache, on the app's KV,
    breakers (one view in /v1/status and /metrics) and spend budgets."""
    extra = settings.extra
    parsed = parse_gateway(
        extra["gateway"], extra.get("prices"), priced=extra.get("spend") is not None
    )
    ai = AiGateway(
        parsed, kv, breakers=breakers, budgets=budgets, metrics=GatewayMetrics(metrics.registry),
        policy=app_policy(settings),
        routing=routing,
    )  # fmt: skip
    return GatewayServices(ai, ai.cache)
