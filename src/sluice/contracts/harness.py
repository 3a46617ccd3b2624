"""The app as contract checks start it: in this process, on a temporary SQLite store.

:func:`ingress_app` starts only what the way in needs (sources, request limits, workflows and
their schemas, PII masking, encryption) and no worker pool, so a check of what the app accepts
neither loads models nor runs steps: accepted events stay queued in a store that is thrown
away. Rate limits and queue limits are lifted, since a check sends its payloads as fast as it
can and is not a test of admission. :func:`full_app` starts the whole app, pools included, for
checks of what it sends out.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import AppSettings, PoolSettings, load_settings
from sluice.ingress.apikeys import OPERATOR_ROLE, RUNNER_ROLE, create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import IngressSettings, parse_ingress
from sluice.workflow.registry import WorkflowRegistry

#: The sections the way in reads; the others (models, caches, spend, ...) are left out.
INGRESS_SECTIONS = ("sources", "ingress", "encryption", "metrics", "egress")
#: Far above what any check sends: admission is not what a contract check tests.
_QUEUE_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Running:
    """A started app: the app, its ingress settings, an HTTP client on it and an operator key
    (runner and operator roles) of tenant ``contracts``."""

    app: SluiceApp
    ingress: IngressSettings
    http: httpx.AsyncClient
    key: str
    http_app: Any

    def auth(self) -> dict[str, str]:
        """The ``Authorization`` header of the key."""
        return {"authorization": f"Bearer {self.key}"}


def ingress_settings(settings: AppSettings, store: str) -> AppSettings:
    """``settings`` reduced to the way in, on ``store``, with queue limits lifted."""
    extra = {k: v for k, v in settings.extra.items() if k in INGRESS_SECTIONS}
    pools = {
        name: dataclasses.replace(pool, queue_limit=_QUEUE_LIMIT)
        for name, pool in settings.pools.items()
    }
    return dataclasses.replace(settings, store=store, extra=extra, pools=pools)


@asynccontextmanager
async def _started(
    settings: AppSettings,
    *,
    run_pools: tuple[str, ...] | None,
    registry: WorkflowRegistry | None = None,
) -> AsyncIterator[Running]:
    app = SluiceApp.from_settings(settings, run_pools=run_pools, registry=registry)
    ingress = parse_ingress(settings)
    gateway = Ingress(app, ingress)
    await app.start()
    try:
        http_app = create_http_app(app, gateway)
        transport = httpx.ASGITransport(app=http_app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sluice.contracts", timeout=60.0
        ) as http:
            _, key = await create_api_key(app.store, "contracts", (RUNNER_ROLE, OPERATOR_ROLE))
            yield Running(app, ingress, http, key, http_app)
    finally:
        await app.stop()


@asynccontextmanager
async def ingress_app(
    app_dir: Path, environ: Mapping[str, str] | None = None
) -> AsyncIterator[Running]:
    """The app's way in, started without pools on a temporary store."""
    with tempfile.TemporaryDirectory(prefix="sluice-contracts-") as tmp:
        settings = load_settings(app_dir, environ=environ)
        reduced = ingress_settings(settings, f"sqlite:///{Path(tmp) / 'contracts.db'}")
        async with _started(reduced, run_pools=()) as running:
            yield running


@asynccontextmanager
async def full_app(settings: AppSettings, registry: WorkflowRegistry) -> AsyncIterator[Running]:
    """The whole app (``settings`` as given, pools running) with ``registry``'s workflows, on a
    temporary store."""
    with tempfile.TemporaryDirectory(prefix="sluice-contracts-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'contracts.db'}"
        pools = {
            name: PoolSettings(name, pool.concurrency, _QUEUE_LIMIT)
            for name, pool in settings.pools.items()
        }
        scoped = dataclasses.replace(settings, store=store, pools=pools)
        async with _started(scoped, run_pools=None, registry=registry) as running:
            yield running
