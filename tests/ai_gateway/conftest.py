"""A real stack for the AI gateway: model simulators and Sluice served by uvicorn on free ports.

The simulators answer with a real TF-IDF + logistic regression model trained on BANKING77
rows; Sluice runs the app for real (store, KV, API keys) and is reached over HTTP, by the
official ``openai`` client or by httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_answerer import TfidfAnswerer
from sluice.drills.simulator_server import SimulatorServer
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.testing import free_port, wait_ready

DATA = Path(__file__).resolve().parents[2] / "examples/triage/data/banking77/train.csv"
WORKFLOW = """
name: noop
steps: [{name: keep, pool: cpu, uses: noop}]
"""
TENANTS = ("acme", "other", "slow", "poor", "wordy")


def gateway_config(primary: int, backup: int, extra: str = "") -> str:
    """The app config: group ``chat`` (primary, then backup) and group ``solo`` (primary only)."""
    return f"""
    store: sqlite:///.sluice/gateway.db
    outbound: {{allow_private: ["127.0.0.1/32"]}}  # local servers: allowed explicitly
    pools: {{cpu: {{concurrency: 1}}}}
    prices:
      primary: {{input_per_1k: 1.0, output_per_1k: 2.0}}
      backup: {{input_per_1k: 1.0, output_per_1k: 2.0}}
      solo: {{input_per_1k: 1.0, output_per_1k: 2.0}}
    reliability:
      breaker: {{failure_threshold: 2, open_s: 30}}
    spend:
      limits: {{"tenant:poor": {{amount: 0.05, window: hour}}}}
    gateway:
      models:
        chat:
          - {{name: primary, base_url: "http://127.0.0.1:{primary}/v1", model: sim-a,
             timeout_s: 5}}
          - {{name: backup, base_url: "http://127.0.0.1:{backup}/v1", model: sim-b,
             timeout_s: 5}}
        solo:
          - {{name: solo, base_url: "http://127.0.0.1:{primary}/v1", model: sim-a,
             timeout_s: 5}}
      limits:
        default: {{requests_per_s: 1000, burst: 1000}}
        tenants:
          slow: {{requests_per_s: 0.5, burst: 2}}
          wordy: {{tokens_per_min: 10}}
      cache: {{enabled: true, ttl_s: 60}}
    {textwrap.indent(textwrap.dedent(extra), "  ")}
    """


@dataclass
class Stack:
    """Sluice in front of two simulators, with an API key per tenant."""

    url: str
    app: SluiceApp
    primary: SimulatorServer
    backup: SimulatorServer
    keys: dict[str, str]

    def client(self, tenant: str = "acme", **options: Any) -> openai.AsyncOpenAI:
        """The official client, pointed at Sluice, with ``tenant``'s key; no retries."""
        options.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=self.keys[tenant], **options)

    def http(self) -> httpx.AsyncClient:
        """A plain HTTP client on Sluice."""
        return httpx.AsyncClient(base_url=self.url, timeout=10)

    def auth(self, tenant: str = "acme") -> dict[str, str]:
        """The Authorization header of ``tenant``."""
        return {"authorization": f"Bearer {self.keys[tenant]}"}

    async def status(self) -> dict[str, Any]:
        """``GET /v1/status`` of the app."""
        async with self.http() as http:
            response = await http.get("/v1/status", headers=self.auth())
        status: dict[str, Any] = response.json()
        return status


@pytest.fixture(scope="session")
def answerer() -> TfidfAnswerer:
    """A real model for the simulators, trained once on a few hundred BANKING77 rows."""
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    return TfidfAnswerer.from_csv(DATA, limit=400)


async def sim_stats(server: SimulatorServer) -> dict[str, int]:
    """A simulator's counters, read over HTTP like a drill would."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{server.port}/sim/stats")
    stats: dict[str, int] = response.json()
    return stats


StackFactory = Callable[..., Awaitable[Stack]]


async def serve_app(app_dir: Path) -> tuple[str, SluiceApp, Callable[[], Awaitable[None]]]:
    """Serve the app in ``app_dir`` with uvicorn on a free port: its URL, the app, and how
    to stop it. Several may serve one app directory (one store, one KV), as processes do."""
    settings = load_settings(app_dir)
    app = SluiceApp.from_settings(settings)
    asgi = create_http_app(app, Ingress(app, parse_ingress(settings)))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(asgi, port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve())

    async def shutdown() -> None:
        server.should_exit = True
        with contextlib.suppress(SystemExit, OSError):
            await task

    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            await wait_ready(http, timeout_s=20)
    except BaseException:
        await shutdown()
        raise
    return url, app, shutdown


@pytest.fixture
async def make_stack(tmp_path: Path, answerer: TfidfAnswerer) -> AsyncIterator[StackFactory]:
    """Start simulators (settings per side) and Sluice; everything stops after the test."""
    stop: list[Callable[[], Awaitable[None]]] = []

    async def make(
        primary: SimulatorSettings | None = None,
        backup: SimulatorSettings | None = None,
        extra: str = "",
        config: str | None = None,
    ) -> Stack:
        """``config`` replaces the test config; ``{primary}`` and ``{backup}`` are the ports."""
        sims = []
        for side in (primary, backup):
            sim = SimulatorServer(ModelSimulator(answerer, side or SimulatorSettings()))
            await sim.start()
            stop.append(sim.aclose)
            sims.append(sim)
        app_dir = tmp_path / "app"
        (app_dir / "workflows").mkdir(parents=True)
        if config is None:  # an app of its own has its own workflows (or none)
            (app_dir / "workflows" / "noop.yaml").write_text(WORKFLOW)
        if config is None:
            config = textwrap.dedent(gateway_config(sims[0].port, sims[1].port, extra))
        else:
            config = config.format(primary=sims[0].port, backup=sims[1].port)
        (app_dir / "sluice.yaml").write_text(config)
        url, app, shutdown = await serve_app(app_dir)
        stop.append(shutdown)
        # Operator keys: the tests read the whole of /v1/status (breakers, guards, caches).
        roles = ("runner", "operator")
        keys = {t: (await create_api_key(app.store, t, roles))[1] for t in TENANTS}
        return Stack(url, app, sims[0], sims[1], keys)

    yield make
    for close in reversed(stop):
        await close()
