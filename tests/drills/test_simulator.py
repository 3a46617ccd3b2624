"""The model simulator: OpenAI-compatible answers from a real model, latency, faults, limits."""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from sluice.cli.main import build_app
from sluice.cli.simulate import _resolve_model
from sluice.drills.simulator import LatencyDistribution, ModelSimulator, SimulatorSettings
from sluice.drills.simulator_answerer import TfidfAnswerer
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import ConfigError, StepError
from sluice.models.base import ModelRequest, ModelResult
from sluice.models.chat_model import label_schema
from sluice.models.openai_client import ClientSettings, JsonOutput, OpenAIClient
from sluice.models.splits import read_examples, write_examples
from sluice.outbound.policy import EgressPolicy

DATA = Path(__file__).resolve().parents[2] / "examples/triage/data/banking77/train.csv"
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
TEXT = "I still have not received my new card"


@pytest.fixture(scope="module")
def answerer() -> TfidfAnswerer:
    """A real TF-IDF + LR model on a few hundred BANKING77 rows answers for the simulator."""
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    return TfidfAnswerer.from_csv(DATA, limit=400)


def asgi(simulator: ModelSimulator) -> httpx.AsyncClient:
    """An in-process HTTP client for the simulator app."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator), base_url="http://sim")


def completion(text: str = TEXT, labels: list[str] | None = LABELS) -> dict[str, Any]:
    """A chat completion request body, with a label schema when labels are given."""
    body: dict[str, Any] = {"model": "gpt-sim", "messages": [{"role": "user", "content": text}]}
    if labels:
        body["response_format"] = JsonOutput(label_schema(labels)).response_format()
    return body


class Exploding:
    """A model that always fails, standing in for a provider's internal error."""

    name = "exploding"
    version = "0"

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Fail."""
        raise RuntimeError("boom")


class TestProtocol:
    async def test_completion_answers_with_the_models_label(self, answerer: TfidfAnswerer) -> None:
        """A completion carries the model's label as JSON content, usage and the fingerprint."""
        expected = await answerer.predict(ModelRequest(TEXT, labels=LABELS))
        async with asgi(ModelSimulator(answerer)) as http:
            response = await http.post("/v1/chat/completions", json=completion())
        assert response.status_code == 200
        assert response.headers["x-sluice-simulator"] == "1"
        body = response.json()
        assert body["system_fingerprint"] == "sluice-simulator"
        assert body["model"] == "gpt-sim"
        answer = orjson.loads(body["choices"][0]["message"]["content"])
        assert answer["label"] == expected.label
        assert answer["label"] in LABELS
        assert answer["confidence"] == pytest.approx(expected.confidence, abs=1e-4)
        content = body["choices"][0]["message"]["content"]
        assert body["usage"]["prompt_tokens"] == math.ceil(len(TEXT) / 4)
        assert body["usage"]["completion_tokens"] == math.ceil(len(content) / 4)

    async def test_every_response_says_it_is_simulated(self, answerer: TfidfAnswerer) -> None:
        """Models, stats, refusals and unknown paths all carry the simulator header."""
        async with asgi(ModelSimulator(answerer)) as http:
            responses = [
                await http.get("/v1/models"),
                await http.get("/sim/stats"),
                await http.post("/v1/chat/completions", content=b"not json"),
                await http.get("/nowhere"),
            ]
        assert [r.status_code for r in responses] == [200, 200, 400, 404]
        assert all(r.headers["x-sluice-simulator"] == "1" for r in responses)
        assert responses[0].json()["data"][0]["id"] == "sim-tfidf"

    async def test_stats_count_and_reset(self, answerer: TfidfAnswerer) -> None:
        """/sim/stats counts requests by outcome; /sim/reset zeroes the counters."""
        simulator = ModelSimulator(answerer)
        async with asgi(simulator) as http:
            await http.post("/v1/chat/completions", json=completion())
            await http.post("/v1/chat/completions", json={"messages": []})
            await http.post("/v1/chat/completions", json={"model": "no-messages"})
            stats = (await http.get("/sim/stats")).json()
            after = (await http.post("/sim/reset")).json()
        assert stats["requests"] == 3
        assert stats["ok"] == 1
        assert stats["bad_requests"] == 2
        assert stats["max_concurrent"] == 1
        assert after["requests"] == 0

    async def test_stream_sends_chunks_that_add_up_to_the_answer(
        self, answerer: TfidfAnswerer
    ) -> None:
        """``stream: true`` answers with SSE chunks whose deltas join to the plain answer."""
        simulator = ModelSimulator(answerer)
        body = {**completion(), "stream": True, "stream_options": {"include_usage": True}}
        async with asgi(simulator) as http:
            plain = (await http.post("/v1/chat/completions", json=completion())).json()
            streamed = await http.post("/v1/chat/completions", json=body)
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [e for e in streamed.text.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        chunks = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
        assert text == plain["choices"][0]["message"]["content"]
        assert len(chunks) > 3
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"] == plain["usage"]
        assert simulator.stats.streams_open == 0
        assert simulator.stats.streams_cancelled == 0

    async def test_failing_model_is_a_500(self) -> None:
        """When the answering model fails, the simulator answers 500 like a provider."""
        simulator = ModelSimulator(Exploding())
        async with asgi(simulator) as http:
            response = await http.post("/v1/chat/completions", json=completion())
        assert response.status_code == 500
        assert response.json()["error"]["message"] == "model failed: RuntimeError"
        assert simulator.stats.errors == 1

    def test_bad_settings_are_all_reported(self, answerer: TfidfAnswerer) -> None:
        """Invalid settings raise one ConfigError listing each problem."""
        settings = SimulatorSettings(p50_ms=800, p95_ms=100, error_rate=1.5, max_concurrency=-1)
        with pytest.raises(ConfigError) as caught:
            ModelSimulator(answerer, settings)
        assert len(caught.value.problems) == 4


class TestLatency:
    def test_sampled_percentiles_match_the_fit(self) -> None:
        """Samples of the log-normal fitted to p50 800 ms and p95 2.8 s have those percentiles."""
        latency = LatencyDistribution(800, 2800)
        assert latency.quantile_ms(0.5) == pytest.approx(800)
        assert latency.quantile_ms(0.95) == pytest.approx(2800)
        rng = random.Random(1)
        samples = sorted(latency.sample_ms(rng) for _ in range(20_000))
        assert samples[10_000] == pytest.approx(800, rel=0.05)
        assert samples[19_000] == pytest.approx(2800, rel=0.07)

    def test_zero_is_instant_and_the_tail_is_capped(self) -> None:
        """p50 0 means no delay; no sample exceeds the cap."""
        rng = random.Random(2)
        assert LatencyDistribution(0, 0).sample_ms(rng) == 0.0
        capped = LatencyDistribution(800, 2800, max_ms=1000)
        assert max(capped.sample_ms(rng) for _ in range(2000)) == 1000

    async def test_answers_take_the_configured_time(self, answerer: TfidfAnswerer) -> None:
        """Answers are delayed by samples of p50 100 ms / p95 300 ms, and never answer sooner.

        The percentiles are checked on the delays the simulator reports, the wall time only
        from below: a shared machine under load may add time, never remove it.
        """
        simulator = ModelSimulator(answerer, SimulatorSettings(p50_ms=100, p95_ms=300, seed=3))

        async def timed(http: httpx.AsyncClient) -> tuple[float, float]:
            started = time.perf_counter()
            response = await http.post("/v1/chat/completions", json=completion())
            assert response.status_code == 200
            wall_ms = (time.perf_counter() - started) * 1000
            return float(response.headers["x-sluice-latency-ms"]), wall_ms

        async with asgi(simulator) as http:
            observed = await asyncio.gather(*(timed(http) for _ in range(400)))
        quantiles = statistics.quantiles([delay for delay, _ in observed], n=20)
        assert quantiles[9] == pytest.approx(100, rel=0.15)  # median
        assert quantiles[18] == pytest.approx(300, rel=0.2)  # 95th percentile
        assert all(wall >= delay - 1 for delay, wall in observed)


class TestFaults:
    async def test_fault_rates_are_honoured(self, answerer: TfidfAnswerer) -> None:
        """500s, 429s and off-schema answers occur at about the configured rates."""
        settings = SimulatorSettings(error_rate=0.2, throttle_rate=0.1, invalid_rate=0.1, seed=5)
        simulator = ModelSimulator(answerer, settings)
        async with asgi(simulator) as http:
            statuses = [
                (await http.post("/v1/chat/completions", json=completion())).status_code
                for _ in range(600)
            ]
        stats = simulator.stats
        assert statuses.count(429) == stats.throttled
        assert statuses.count(500) == stats.errors
        assert 35 <= stats.throttled <= 85  # expected 60
        assert 85 <= stats.errors <= 155  # expected 120
        assert 15 <= stats.invalid <= 70  # expected 42 of about 420 answers
        assert stats.ok + stats.throttled + stats.errors == 600

    async def test_throttled_answers_carry_retry_after(self, answerer: TfidfAnswerer) -> None:
        """A simulated 429 says when to come back."""
        settings = SimulatorSettings(throttle_rate=1.0, retry_after_s=4)
        async with asgi(ModelSimulator(answerer, settings)) as http:
            response = await http.post("/v1/chat/completions", json=completion())
        assert response.status_code == 429
        assert response.headers["retry-after"] == "4"
        assert response.json()["error"]["type"] == "rate_limit_error"

    async def test_concurrency_beyond_the_limit_is_throttled(self, answerer: TfidfAnswerer) -> None:
        """Over a real socket, requests beyond max_concurrency in flight get 429.

        Each admitted request is held 3 s: far longer than sending twelve takes on a loaded
        machine, so the first four are still in flight when the other eight arrive."""
        settings = SimulatorSettings(p50_ms=3000, p95_ms=3000, max_concurrency=4,
                                     retry_after_s=0.5)  # fmt: skip
        async with (
            SimulatorServer(ModelSimulator(answerer, settings)) as server,
            OpenAIClient(ClientSettings(server.base_url), policy=EgressPolicy.loopback()) as http,
        ):
            messages = completion()["messages"]
            outcomes = await asyncio.gather(
                *(http.chat("gpt-sim", messages) for _ in range(12)), return_exceptions=True
            )
        refused = [o for o in outcomes if isinstance(o, StepError)]
        assert len(refused) == 8
        assert all(e.retryable and e.retry_after == 0.5 for e in refused)
        stats = server.simulator.stats
        assert (stats.ok, stats.over_capacity, stats.max_concurrent) == (4, 8, 4)


class TestCommand:
    def test_command_is_registered(self) -> None:
        """`sluice simulate-model` exists and documents its knobs."""
        result = CliRunner().invoke(build_app(), ["simulate-model", "--help"])
        assert result.exit_code == 0
        assert "--max-concurrency" in result.output

    def test_bad_settings_exit_before_serving(self, tmp_path: Path) -> None:
        """Invalid rates stop the command with a clear error instead of serving."""
        data = tmp_path / "small.csv"
        write_examples(data, read_examples(DATA)[::20])
        args = ["simulate-model", "--data", str(data), "--error-rate", "2"]
        result = CliRunner().invoke(build_app(), args)
        assert result.exit_code == 2
        assert "error_rate: must be between 0 and 1" in result.output

    def test_without_a_registry_the_answerer_is_trained(self, tmp_path: Path) -> None:
        """Given training data, --model names a freshly trained TF-IDF answerer."""
        data = tmp_path / "small.csv"
        write_examples(data, read_examples(DATA)[::20])
        model = _resolve_model(None, "local-small", data)
        assert model.name == "local-small"
        assert isinstance(model, TfidfAnswerer)
