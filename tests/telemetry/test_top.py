"""``sluice top --once`` against a real served app: a simulated provider behind two tiers."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.cli.top import Scrape, parse_scrape, quantile, render
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_answerer import TfidfAnswerer
from sluice.drills.simulator_server import SimulatorServer
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.models.splits import read_examples
from sluice.testing import free_port, wait_until
from tests.conftest import MakeApp
from tests.telemetry.test_alerts import DATA, LABELS, answerer

__all__ = ["answerer"]  # a fixture shared with the alert tests


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Distinct tickets, more than a test sends: most requests miss the cache and cost."""
    return list(dict.fromkeys(e.text for e in read_examples(DATA)[2000:6000]))


@dataclass
class Served:
    """A served app: its base URL, an API key, and the app itself."""

    url: str
    key: str
    app: SluiceApp


@pytest.fixture
async def served(make_app: MakeApp, answerer: TfidfAnswerer) -> AsyncIterator[Served]:
    """The app on a real socket; a cascade of two simulated tiers, an SLO guard, caches."""
    async with SimulatorServer(ModelSimulator(answerer, SimulatorSettings(seed=3))) as sim:
        config = f"""
        store: sqlite:///.sluice/top.db
        outbound: {{allow_private: ["127.0.0.1/32"]}}  # local servers: allowed explicitly
        pools: {{inference: {{concurrency: 4}}}}
        runtime: {{poll_ms: 20}}
        models:
          small: {{kind: openai, base_url: "{sim.base_url}", labels: {LABELS}}}
          large: {{kind: openai, base_url: "{sim.base_url}", labels: {LABELS}}}
        prices:
          small: {{input_per_1k: 0.1, output_per_1k: 0.2}}
          large: {{input_per_1k: 1.0, output_per_1k: 2.0}}
        alerts: {{window_s: 60}}
        metrics: {{flags: [beta]}}
        """
        workflow = """
        name: tickets
        input_schema: {type: object, required: [text]}
        slo: {p95_ms: 5000, error_rate: 0.5, window_s: 30, policy: degrade}
        steps:
          - name: classify
            pool: inference
            uses: classify
            options: {cascade: [{model: small, threshold: 0.6}, {model: large}]}
        """
        settings = load_settings(make_app(config, {"tickets.yaml": workflow}))
        app = SluiceApp.from_settings(settings)
        asgi = create_http_app(app, Ingress(app, parse_ingress(settings)))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port,
                                               log_level="warning"))  # fmt: skip
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        _, key = await create_api_key(app.store, "acme", ("runner", "operator"))
        yield Served(f"http://127.0.0.1:{port}", key, app)
        server.should_exit = True
        await task


async def _traffic(served: Served, texts: list[str], stop: asyncio.Event, sent: list[int]) -> int:
    """Post tickets, every tenth one repeated (a cache hit), until ``stop``; the number sent
    (also kept up to date in ``sent[0]``, for tests waiting on progress)."""
    headers = {"authorization": f"Bearer {served.key}"}
    sent[0] = 0
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        while not stop.is_set():
            n = sent[0]
            text = texts[(n - 1 if n % 10 == 9 else n) % len(texts)]
            flag = {"x-sluice-flag": "beta"} if n % 2 else {}
            resp = await http.post("/v1/workflows/tickets/runs", json={"text": text},
                                   headers={**headers, **flag}, params={"wait": 5})  # fmt: skip
            assert resp.status_code == 200, resp.text
            sent[0] = n + 1
    return sent[0]


def _breakers(served: Served) -> set[str]:
    return {b.name for b in served.app.services["breakers"].snapshot()}


def _figure(frame: str, label: str) -> float:
    found = re.search(re.escape(label) + r" ([0-9.e+-]+)", frame)
    assert found, f"{label!r} not in the frame:\n{frame}"
    return float(found.group(1))


async def test_top_once_shows_a_served_app(served: Served, texts: list[str]) -> None:
    """Rates, latency percentiles, cost, caches, pools, breakers and guards, from real traffic."""
    stop, sent_so_far = asyncio.Event(), [0]
    traffic = asyncio.create_task(_traffic(served, texts, stop, sent_so_far))
    # Events of both flags before the first scrape (labelled series exist), and an escalation
    # (the large model's breaker exists only from its first call).
    await wait_until(lambda: sent_so_far[0] >= 10 and "model:large" in _breakers(served),
                 "ten events and an escalation")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sluice", "top", "--url", served.url, "--once",
        "--interval", "1", "--api-key", served.key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    stop.set()
    sent = await traffic
    assert proc.returncode == 0, err.decode()
    frame = out.decode()
    assert sent > 0
    assert _figure(frame, "accepted/s") > 0
    assert _figure(frame, "done/s") > 0
    assert _figure(frame, "dead/s") == 0
    assert _figure(frame, "per minute") > 0
    assert _figure(frame, "tokens in/min") > 0
    (workflow_row,) = [line for line in frame.splitlines() if line.strip().startswith("tickets")]
    assert re.search(r"p50=[0-9.]+ ms\s+p95=[0-9.]+ ms\s+p99=[0-9.]+ ms", workflow_row)
    assert re.search(r"response_cache\s+[0-9.]+%", frame)
    assert re.search(r"inference\s+\d+\s+\d+\s+4\b", frame)  # queue, in flight, cap
    assert "GUARDS    tickets normal" in frame
    assert "ALERTS    none firing" in frame
    async with httpx.AsyncClient(base_url=served.url) as http:
        status = await http.get("/v1/status", headers={"authorization": f"Bearer {served.key}"})
    assert status.json()["alerts"]["firing"] == []
    assert status.json()["alerts"]["window_s"] == 60
    assert "model:large closed" in frame


async def test_without_a_key_states_come_from_the_gauges(served: Served, texts: list[str]) -> None:
    """No API key: /v1/status is refused and the breaker and guard gauges stand in."""
    stop, sent_so_far = asyncio.Event(), [0]
    traffic = asyncio.create_task(_traffic(served, texts[:5], stop, sent_so_far))
    await wait_until(lambda: sent_so_far[0] >= 2, "an event of each flag")
    stop.set()
    await traffic
    async with httpx.AsyncClient(base_url=served.url) as http:
        refused = await http.get("/v1/status")
        scrape = parse_scrape((await http.get("/metrics")).text, time.monotonic())
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    top = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sluice", "top", "--url", served.url, "--once", "--interval", "0.2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await top.communicate()
    assert top.returncode == 0, err.decode()
    assert "GUARDS    tickets normal" in out.decode()  # from the sluice_slo_guard_state gauge
    flags = {labels["flag"] for labels, _ in scrape.values("sluice_model_calls_total")}
    assert flags == {"beta", "none"}  # the flag travelled from the header to the classify step
    frame = render(scrape, None, served.url)
    assert "GUARDS    tickets normal" in frame
    assert "accepted/s -" in frame  # one scrape: no rate yet


def test_quantiles_interpolate_inside_the_bucket() -> None:
    """As histogram_quantile: linear inside the bucket, +Inf answers the last finite bound."""
    buckets = {0.1: 0.0, 0.2: 10.0, 0.4: 20.0, float("inf"): 20.0}
    assert quantile(0.5, buckets) == pytest.approx(0.2)
    assert quantile(0.25, buckets) == pytest.approx(0.15)
    assert quantile(0.75, buckets) == pytest.approx(0.3)
    assert quantile(0.99, {0.1: 5.0, float("inf"): 10.0}) == pytest.approx(0.1)
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None


def test_a_scrape_sums_and_groups_samples() -> None:
    text = (
        "# TYPE x_total counter\n"
        'x_total{a="1",b="p"} 2\nx_total{a="2",b="p"} 3\nx_total{a="2",b="q"} 4\n'
    )
    scrape: Scrape = parse_scrape(text, 0.0)
    assert scrape.total("x_total") == 9
    assert scrape.total("x_total", b="p") == 5
    assert scrape.by("x_total", "a") == {"1": 2, "2": 7}


async def test_the_live_view_redraws_in_place_until_interrupted(served: Served) -> None:
    """Without --once: frames drawn over each other (ANSI home + clear); Ctrl-C ends it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sluice", "top", "--url", served.url, "--interval", "0.2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = b""
    async with asyncio.timeout(30):
        while seen.count(b"\x1b[H\x1b[2J") < 2:
            seen += await proc.stdout.read(4096)
    proc.send_signal(signal.SIGINT)
    rest, _ = await proc.communicate()
    seen += rest
    assert proc.returncode == 0
    assert seen.count(b"POOLS") >= 2
