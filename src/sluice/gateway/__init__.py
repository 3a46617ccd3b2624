"""Deprecated: the AI gateway is :mod:`sluice.ai_gateway` now ("gateway" alone named two things).

Importing this package warns once and gives the AI gateway's public names; the old module
paths (``sluice.gateway.proxy``, ``sluice.gateway.upstream``, ...) name the moved modules.
It will be removed in a later release.
"""

from __future__ import annotations

import sys
import warnings

from sluice.ai_gateway import config, idempotency, metrics, proxy, routes, streaming
from sluice.ai_gateway.config import GatewaySettings, parse_gateway
from sluice.ai_gateway.proxy import AiGateway
from sluice.ai_gateway.routes import gateway_routes
from sluice.outbound import http1, upstream

warnings.warn(
    "sluice.gateway is renamed sluice.ai_gateway; import from there",
    DeprecationWarning,
    stacklevel=2,
)

# Old deep imports (``from sluice.gateway.proxy import AiGateway``) resolve to the moved modules.
for _old, _module in {
    "config": config, "idempotency": idempotency, "metrics": metrics, "proxy": proxy,
    "routes": routes, "streaming": streaming, "http1": http1, "upstream": upstream,
}.items():  # fmt: skip
    sys.modules[f"{__name__}.{_old}"] = _module

__all__ = ["AiGateway", "GatewaySettings", "gateway_routes", "parse_gateway"]
