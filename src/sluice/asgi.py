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
import logging
import signal
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from sluice.ai_gateway.routes import gateway_routes
from sluice.app import SluiceApp
from sluice.errors import ConfigError
from sluice.ingress import admin, http
from sluice.ingress.intake import Ingress
from sluice.ingress.openapi import openapi_document
from sluice.ingress.reload import reload_ingress
from sluice.ingress.router_errors import exception_handlers

log = logging.getLogger("sluice.reload")


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the process's Prometheus metrics."""
    app: SluiceApp = request.app.state.sluice
    return Response(app.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _worker_healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _worker_readyz(request: Request) -> Response:
    app: SluiceApp = request.app.state.sluice
    if not app.started:
        return JSONResponse({"status": "starting or stopping"}, status_code=503)
    return JSONResponse({"status": "ready", "pools": app.runtime.stats()})


def create_worker_http_app(app: SluiceApp) -> ASGIApp:
    """The small HTTP app of a worker process (``sluice worker --metrics-port``): ``/metrics``,
    ``/healthz`` and ``/readyz`` for Prometheus and orchestrators. No lifespan: the worker
    command starts and stops ``app`` itself."""
    starlette = Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", _worker_healthz, methods=["GET"]),
            Route("/readyz", _worker_readyz, methods=["GET"]),
        ]
    )
    starlette.state.sluice = app
    return starlette


def _reload_on_sighup(ingress: Ingress) -> bool:
    """Reload the configuration on SIGHUP (main thread only); whether the handler is set."""

    def reload() -> None:
        try:
            reload_ingress(ingress)
        except ConfigError as exc:  # the settings in force stay
            log.error("configuration not reloaded, the current one stays: %s", exc)

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
    except (RuntimeError, ValueError):  # not the main thread (an app served in a test thread)
        return False
    return True


def create_http_app(app: SluiceApp, ingress: Ingress) -> ASGIApp:
    """The ASGI application serving ``app`` through ``ingress``; its lifespan starts and stops
    ``app`` (and the ingress's purge of expired idempotency keys)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await app.start()
        purge = asyncio.create_task(ingress.purge_expired_keys(), name="purge-idempotency")
        hangup = _reload_on_sighup(ingress)
        # What start-up allocated (routes, schemas, models, metrics) lives as long as the
        # process: out of the collector's sight, the full collections that request garbage
        # triggers walk only the young objects instead of pausing the loop over all of it.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if hangup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
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
    fast = http.WebhookFastPath(starlette, starlette)
    return http.CorrelationMiddleware(fast, app.metrics, app.telemetry)
