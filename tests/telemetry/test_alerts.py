"""Cost-spike alerts on a real app: a simulated provider behind a ``kind: openai`` model.

Windows are closed by the test (``Alerts.evaluate``) instead of a wall clock, so the run takes
seconds and the window an alert fires in is exact.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_answerer import TfidfAnswerer
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import ConfigError
from sluice.models.base import ModelResult, Usage
from sluice.models.splits import read_examples
from sluice.outbound.egress import Egress
from sluice.outbound.policy import EgressPolicy
from sluice.store.base import EventState
from sluice.telemetry.alerts import (
    COST_PER_REQUEST,
    OUTPUT_TOKENS_PER_CALL,
    Alerts,
    AlertSettings,
    SpikeAlert,
    SpikeDetector,
)
from sluice.testing import free_port
from sluice.testing.servers import AsgiServer
from tests.conftest import MakeApp

DATA = Path(__file__).resolve().parents[2] / "examples/triage/data/banking77/train.csv"
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed"]
PER_WINDOW = 10
BASELINE_WINDOWS = 4


@pytest.fixture(scope="module")
def answerer() -> TfidfAnswerer:
    """A real TF-IDF model on a few hundred BANKING77 rows answers for the simulator."""
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    return TfidfAnswerer.from_csv(DATA, limit=400)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Distinct tickets, one per request, so no answer comes from the response cache."""
    seen = dict.fromkeys(e.text for e in read_examples(DATA)[1000:2000])
    return list(seen)[: PER_WINDOW * (BASELINE_WINDOWS + 2)]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """A real HTTP server recording the alerts posted to it."""
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(orjson.loads(await request.body()))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/alerts", hook, methods=["POST"])])
    async with AsgiServer(app) as server:
        yield server.port, received


def _app(make_app: MakeApp, sim: SimulatorServer, hook_port: int) -> Path:
    # Output tokens priced well above input ones, as providers do: tripled answers about
    # triple the cost of a request.
    config = f"""
    store: sqlite:///.sluice/alerts.db
    outbound: {{allow_private: ["127.0.0.1/32"]}}  # local servers: allowed explicitly
    pools: {{inference: {{concurrency: 4}}}}
    runtime: {{poll_ms: 20}}
    egress: {{allow: ["127.0.0.1:{hook_port}"]}}
    models:
      sim: {{kind: openai, base_url: "{sim.base_url}", labels: {LABELS}}}
    prices:
      sim: {{input_per_1k: 0.01, output_per_1k: 2.0}}
    alerts:
      window_s: 3600
      baseline_windows: {BASELINE_WINDOWS}
      min_baseline: 3
      factor: 2.0
      min_calls: {PER_WINDOW}
      webhook: "http://127.0.0.1:{hook_port}/alerts"
    """
    workflow = """
    name: tickets
    input_schema: {type: object, required: [text]}
    steps:
      - {name: classify, pool: inference, uses: classify, options: {cascade: [{model: sim}]}}
    """
    return make_app(config, {"tickets.yaml": workflow})


async def _window(app: SluiceApp, texts: list[str]) -> list[SpikeAlert]:
    """Run one window's requests to the end, then close the window."""
    ids = [await app.runtime.submit("tickets", {"text": text}) for text in texts]
    for event_id in ids:
        record = await app.runtime.wait(event_id, 20)
        assert record.state is EventState.DONE, record.error
    alerts: Alerts = app.services["alerts"]
    return alerts.evaluate()


@pytest.mark.parametrize("spike", [True, False], ids=["tripled-outputs", "steady"])
async def test_tripled_outputs_raise_an_alert_within_one_window(
    make_app: MakeApp,
    answerer: TfidfAnswerer,
    texts: list[str],
    receiver: tuple[int, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
    spike: bool,
) -> None:
    """Baseline windows are quiet; the first window of tripled answers fires both signals,
    logged, counted and posted once. The steady run of the same length fires nothing."""
    hook_port, received = receiver
    simulator = ModelSimulator(answerer, SimulatorSettings(seed=7))
    caplog.set_level(logging.INFO, logger="sluice.alerts")
    async with SimulatorServer(simulator) as sim:
        settings = load_settings(_app(make_app, sim, hook_port))
        async with SluiceApp.from_settings(settings) as app:
            windows = [texts[i : i + PER_WINDOW] for i in range(0, len(texts), PER_WINDOW)]
            for batch in windows[:BASELINE_WINDOWS]:
                assert await _window(app, batch) == []
            if spike:
                simulator.settings = dataclasses.replace(simulator.settings, answer_padding=2.0)
            fired = await _window(app, windows[BASELINE_WINDOWS])
            alerts: Alerts = app.services["alerts"]
            await alerts.flush()
            scraped = app.metrics.render().decode()
    if not spike:
        assert alerts.detector.judged == 2 * (BASELINE_WINDOWS + 1)  # every window counted
        assert fired == []
        assert received == []
        assert not [r for r in caplog.records if r.name == "sluice.alerts"]
        assert "sluice_spike_alerts_total{" not in scraped
        return
    assert {(a.state, a.workflow, a.model, a.signal) for a in fired} == {
        ("firing", "tickets", "sim", OUTPUT_TOKENS_PER_CALL),
        ("firing", "tickets", "sim", COST_PER_REQUEST),
    }
    tokens = next(a for a in fired if a.signal == OUTPUT_TOKENS_PER_CALL)
    assert 2.5 < tokens.value / tokens.baseline < 3.5  # the simulator's answers tripled
    assert tokens.samples == PER_WINDOW
    logged = [r for r in caplog.records if r.name == "sluice.alerts"]
    assert {r.__dict__["alert"]["signal"] for r in logged} == {COST_PER_REQUEST,
                                                                OUTPUT_TOKENS_PER_CALL}  # fmt: skip
    assert all(r.levelno == logging.WARNING and "spike firing" in r.getMessage() for r in logged)
    assert sorted(p["signal"] for p in received) == sorted([COST_PER_REQUEST,
                                                            OUTPUT_TOKENS_PER_CALL])  # fmt: skip
    assert all(p["type"] == "sluice.spike" and p["workflow"] == "tickets" for p in received)
    assert alerts.deliveries == {"sent": 2, "failed": 0, "dropped": 0}
    assert (
        'sluice_spike_alerts_total{model="sim",signal="output_tokens_per_call",'
        'workflow="tickets"} 1.0' in scraped
    )
    assert 'sluice_spike_alert_active{model="sim",signal="cost_per_request"' in scraped
    assert "sluice_model_output_tokens_total{" in scraped


def _requests(detector: SpikeDetector, tokens: int, count: int = 5, workflow: str = "w") -> None:
    """``count`` requests of ``workflow``, each one call answering ``tokens`` tokens."""
    for _ in range(count):
        call = ModelResult("m", {}, "x", 0.9, usage=Usage(10, tokens), cost=tokens / 1000)
        detector.record(workflow, [call])


def test_an_alert_fires_once_and_resolves_when_the_figure_is_back() -> None:
    """No repeat while a spike lasts; a lasting change becomes the baseline and resolves."""
    detector = SpikeDetector(AlertSettings(baseline_windows=4, min_baseline=2, min_calls=5,
                                           signals=(OUTPUT_TOKENS_PER_CALL,)))  # fmt: skip
    states = []
    for tokens in (10, 11, 10, 40, 40, 40, 40, 40):
        _requests(detector, tokens)
        states.append([a.state for a in detector.evaluate(now=0.0)])
    assert states == [[], [], [], ["firing"], [], ["resolved"], [], []]


def test_thin_windows_are_not_judged() -> None:
    """Below min_calls a window neither fires nor enters the baseline."""
    detector = SpikeDetector(AlertSettings(min_baseline=1, min_calls=5))
    _requests(detector, 10)
    assert detector.evaluate() == []
    _requests(detector, 100, count=4)  # too few
    assert detector.evaluate() == []
    _requests(detector, 100)
    assert {a.signal for a in detector.evaluate()} == {COST_PER_REQUEST, OUTPUT_TOKENS_PER_CALL}


def test_bad_settings_are_reported_with_their_paths() -> None:
    with pytest.raises(ConfigError) as err:
        AlertSettings.from_config(
            {"factor": 0.5, "min_calls": 0, "signals": ["latency"], "colour": 1,
             "webhook": "http://evil.example.com/x"},
            frozenset({"hooks.example.com"}),
        )  # fmt: skip
    text = "\n".join(err.value.problems)
    for fragment in (
        "alerts.factor",
        "alerts.min_calls",
        "alerts.signals",
        "alerts.colour",
        "alerts.webhook: http://evil.example.com/x is not on the egress allowlist",
    ):
        assert fragment in text  # fmt: skip
    ok = AlertSettings.from_config({"webhook": "https://hooks.example.com/a", "window_s": 30},
                                   frozenset({"hooks.example.com"}))  # fmt: skip
    assert (ok.window_s, ok.webhook) == (30.0, "https://hooks.example.com/a")


async def test_webhook_posts_are_bounded_and_never_retried() -> None:
    """A full queue drops (counted), a dead receiver fails once (counted): no retry storm."""
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings = AlertSettings(
        baseline_windows=2,
        min_baseline=1,
        min_calls=5,
        queue=1,
        signals=(OUTPUT_TOKENS_PER_CALL,),
        webhook=f"http://{dead}/a",
    )
    egress = Egress(EgressPolicy.loopback(allow=frozenset({dead}), timeout_s=2.0))
    alerts = Alerts(settings, egress)
    await alerts.start()
    try:
        for tokens in (10, 50):  # a baseline window, then a spike in three workflows at once
            for workflow in ("a", "b", "c"):
                _requests(alerts.detector, tokens, workflow=workflow)
            changes = alerts.evaluate()
        assert len(changes) == 3
        await alerts.flush()
    finally:
        await alerts.aclose()
        await egress.aclose()
    assert alerts.deliveries == {"sent": 0, "failed": 1, "dropped": 2}
