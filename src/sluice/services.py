"""The downstream clients steps reach through ``ctx.services``, built from the app config.

Each entry is built only when the config asks for it, so an app without models never imports
a model framework. Anything with ``aclose()`` is closed when the app stops; anything with
``start()`` is started (warmed up) before the first event is claimed.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from sluice.config import AppSettings
from sluice.kv.base import KV
from sluice.outbound.egress import Egress
from sluice.reliability.breaker import BreakerRegistry
from sluice.reliability.config import parse_reliability
from sluice.steps.files import AppFiles
from sluice.telemetry.alerts import Alerts, AlertSettings
from sluice.telemetry.metrics import Metrics, reliability_gauges


class Services(dict[str, Any]):
    """Named services with one lifecycle."""

    async def start(self) -> None:
        """Start (warm up) every service that can be."""
        for service in self.values():
            start = getattr(service, "start", None)
            if start is not None and inspect.iscoroutinefunction(start):
                await start()

    async def aclose(self) -> None:
        """Close every service that holds resources, the last built first.

        Later services use earlier ones (alerts post through egress), so they stop first.
        """
        for service in reversed(list(self.values())):
            close = getattr(service, "aclose", None)
            if close is not None and inspect.iscoroutinefunction(close):
                await close()


def build_services(
    settings: AppSettings, kv: KV, given: Mapping[str, Any] | None = None
) -> Services:
    """The services of ``settings``, plus (and overridden by) ``given``."""
    reliability = parse_reliability(settings.extra.get("reliability"))
    services = Services(
        kv=kv,
        files=AppFiles(settings.app_dir),
        egress=Egress.from_settings(settings),
        # One breaker per downstream: model:NAME (cascade tiers), webhook:HOST (deliver).
        breakers=BreakerRegistry(reliability.breaker),
    )
    if "models" in settings.extra or "indexes" in settings.extra:
        from sluice.ai_services import build_ai_services

        services.update(build_ai_services(settings, kv, services["breakers"]))
    services.update(given or {})
    metrics = services.get("metrics")
    if isinstance(metrics, Metrics):
        metrics.configure(settings.extra.get("metrics"))
        metrics.watch(lambda: reliability_gauges(services))
    if settings.extra.get("alerts") is not None and "alerts" not in services:
        egress = services["egress"]
        alerts = AlertSettings.from_config(settings.extra["alerts"], egress.allow)
        services["alerts"] = Alerts(alerts, egress, metrics)
    return services
