"""The HTTP application of one process: every route mounted in one place.

:func:`create_http_app` composes the ingress's routes (:mod:`sluice.ingress.http`), the AI
gateway's (:mod:`sluice.ai_gateway.routes`, when the app has a ``gateway:`` section),
``/metrics`` and the OpenAPI document under one correlation middleware, and ties the app's
lifecycle to the server's lifespan. Endpoints find the app and the ingress on the Starlette
application's state (``request.app.state.sluice`` and ``.ingress``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from sluice.ai_gateway.routes import gateway_routes
from sluice.app import SluiceApp
from sluice.ingress import admin, http
from sluice.ingress.intake import Ingress
from sluice.ingress.openapi import openapi_document
from sluice.ingress.router_errors import exception_handlers


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the process's Prometheus metrics."""
    app: SluiceApp = request.app.state.sluice
    return Response(app.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def create_http_app(app: SluiceApp, ingress: Ingress) -> ASGIApp:
    """The ASGI application serving ``app`` through ``ingress``; its lifespan starts and stops
    ``app`` (and the ingress's purge of expired idempotency keys)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await app.start()
        purge = asyncio.create_task(ingress.purge_expired_keys(), name="purge-idempotency")
        # What start-up allocated (routes, schemas, models, metrics) lives as long as the
        # process: out of the collector's sight, the full collections that request garbage
        # triggers walk only the young objects instead of pausing the loop over all of it.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            purge.cancel()
            await asyncio.gather(purge, return_exceptions=True)
            await app.stop()

    starlette = Starlette(
        routes=[
            *http.ROUTES,
            Route("/metrics", metrics, methods=["GET"]),
            *http.LATE_ROUTES,
            *admin.ROUTES,  # governed: index items and /v1/admin/...
            *gateway_routes(app, ingress.auth),  # the AI gateway, when configured
        ],
        lifespan=lifespan,
        exception_handlers=exception_handlers(),  # router refusals as problem documents too
    )
    starlette.state.sluice = app
    starlette.state.ingress = ingress
    starlette.state.openapi = openapi_document(
        app.registry, ingress.settings, ai_gateway=app.settings.extra.get("gateway") is not None
    )
    # A trailing-slash redirect would name the client's Host header in its Location: the
    # path without its slash is simply not found.
    starlette.router.redirect_slashes = False
    return http.CorrelationMiddleware(starlette, app.metrics, app.telemetry)
