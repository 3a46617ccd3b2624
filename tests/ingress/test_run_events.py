"""A waited-on run as server-sent events over the real HTTP server: the ``generate`` step's
text as the model (the simulator, streaming) produces it, then the run's result; without
``Accept: text/event-stream`` nothing changes; a caller who leaves stops nothing durable."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.server import server_limits
from sluice.ingress.settings import parse_ingress
from sluice.steps.generate import Generation
from sluice.testing import AsgiServer
from tests.conftest import MakeApp
from tests.steps.test_generate import FixedLabel

CONFIG = """
store: sqlite:///.sluice/events.db
pools:
  inference: {concurrency: 4}
models:
  llm: {kind: openai, base_url: BASE_URL}
prices:
  llm: {input_per_1k: 0.001, output_per_1k: 0.002}
outbound: {allow_private: ["127.0.0.1/32"]}   # the simulator listens on loopback
"""
WORKFLOW = """
name: gen
steps:
  - name: draft
    pool: inference
    uses: generate
    options: {template: summary, inputs: {ticket: text}}
"""
TEMPLATE = """
model: llm
params: {temperature: 0, max_tokens: 200}
variables:
  ticket: {type: string, max_chars: 500}
system: You summarize bank support tickets.
user: "Ticket: {{ ticket }}"
"""
RUNS = "/v1/workflows/gen/runs"
EVENTS = {"accept": "text/event-stream"}


@dataclass
class Served:
    """The app, its real HTTP server, an API key and the simulator behind its model."""

    app: SluiceApp
    client: httpx.AsyncClient
    auth: dict[str, str]
    simulator: ModelSimulator


@pytest.fixture
async def served(make_app: MakeApp) -> AsyncIterator[Served]:
    """The generate app served by uvicorn with ``sluice serve``'s limits; its model is the
    generative simulator, streaming a few characters every 5 ms."""
    settings = SimulatorSettings(mode="generate", seed=7, p50_ms=20, p95_ms=40, stream_chunk_ms=5)
    simulator = ModelSimulator(FixedLabel(), settings)
    async with SimulatorServer(simulator) as sim:
        app_dir = make_app(CONFIG.replace("BASE_URL", sim.base_url), {"gen.yaml": WORKFLOW})
        (app_dir / "prompts").mkdir()
        (app_dir / "prompts" / "summary.yaml").write_text(textwrap.dedent(TEMPLATE))
        config = load_settings(app_dir)
        app = SluiceApp.from_settings(config)
        await app.start()
        try:
            _, key = await create_api_key(app.store, "acme")
            http = create_http_app(app, Ingress(app, parse_ingress(config)))
            async with (
                AsgiServer(http, limits=server_limits()) as server,
                httpx.AsyncClient(base_url=server.url, timeout=60) as client,
            ):
                yield Served(app, client, {"authorization": f"Bearer {key}"}, simulator)
        finally:
            await app.stop()


async def _read(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, data) of each server-sent event."""
    name = ""
    async for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, orjson.loads(line[6:])


def _streams(app: SluiceApp) -> Any:
    generation = app.services["generate"]
    assert isinstance(generation, Generation)
    return generation.streams


async def test_the_text_streams_then_the_result(served: Served) -> None:
    """``accepted``, the step's text in pieces as the model writes it, then ``result`` whose
    draft is exactly that text."""
    headers = {**served.auth, **EVENTS}
    body = {"text": "my card has not arrived after two weeks"}
    async with served.client.stream("POST", f"{RUNS}?wait=20", json=body, headers=headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [e async for e in _read(resp.aiter_lines())]
    names = [name for name, _ in events]
    assert names[0] == "accepted"
    assert names[-1] == "result"
    assert set(names[1:-1]) == {"text"}
    texts = [data for name, data in events if name == "text"]
    assert len(texts) >= 2  # pieces, not the answer in one
    assert {(t["step"], t["call"]) for t in texts} == {("draft", 1)}
    result = events[-1][1]
    assert result["status"] == "done"
    assert result["event_id"] == events[0][1]["event_id"]
    assert "".join(t["text"] for t in texts) == result["result"]["draft"]["text"]
    assert "lagged" not in result
    assert _streams(served.app).open == 0


async def test_without_the_header_nothing_changes(served: Served) -> None:
    """The same call without ``Accept: text/event-stream``: one JSON answer, no stream asked
    of the model."""
    resp = await served.client.post(f"{RUNS}?wait=20", json={"text": "card late"},
                                     headers=served.auth)  # fmt: skip
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    view = resp.json()
    assert view["status"] == "done"
    assert view["result"]["draft"]["text"]
    assert served.simulator.stats.streams_open == 0
    assert served.simulator.stats.streams_cancelled == 0


async def test_refusals_stay_problem_documents(served: Served) -> None:
    """Input the workflow refuses is answered as before, not as a stream."""
    resp = await served.client.post(f"{RUNS}?wait=5", content=b"[1, 2",
                                    headers={**served.auth, **EVENTS,
                                             "content-type": "application/json"})  # fmt: skip
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"


async def test_a_caller_who_leaves_stops_nothing_durable(served: Served) -> None:
    """The caller reads one piece of text and hangs up: its subscription closes, the model's
    stream is read to its end and the run finishes."""
    headers = {**served.auth, **EVENTS}
    event_id = ""
    async with served.client.stream("POST", f"{RUNS}?wait=20", json={"text": "card stolen"},
                                    headers=headers) as resp:  # fmt: skip
        async for name, data in _read(resp.aiter_lines()):
            if name == "accepted":
                event_id = data["event_id"]
            if name == "text":
                break
    assert event_id
    record = await served.app.runtime.wait(event_id, 30)
    assert record.state.value == "done"
    for _ in range(100):  # the server notices the closed connection on its next write
        if _streams(served.app).open == 0:
            break
        await asyncio.sleep(0.05)
    assert _streams(served.app).open == 0
    assert served.simulator.stats.streams_cancelled == 0


async def test_the_openapi_document_shows_the_event_stream(served: Served) -> None:
    """The runs endpoint's 200 lists ``text/event-stream`` beside JSON."""
    document = (await served.client.get("/openapi.json")).json()
    ok = document["paths"][RUNS]["post"]["responses"]["200"]
    assert set(ok["content"]) == {"application/json", "text/event-stream"}
    assert "text/event-stream" in ok["description"]
