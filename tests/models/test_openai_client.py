"""The OpenAI-compatible client and the chat classifier, against the simulator on a real socket."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_answerer import TfidfAnswerer
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import ConfigError, StepError
from sluice.models.base import ModelRequest, Usage
from sluice.models.chat_model import ChatModel, ChatModelBuilder, label_schema
from sluice.models.openai_client import (
    ClientSettings,
    JsonOutput,
    ModelOutputError,
    OpenAIClient,
)
from sluice.models.prices import PriceTable
from sluice.outbound.policy import EgressPolicy
from sluice.outbound.retry_after import parse_retry_after

# The simulator listens on loopback: allowed explicitly, as an app's allow_private would.
LOCAL = EgressPolicy.loopback()

DATA = Path(__file__).resolve().parents[2] / "examples/triage/data/banking77/train.csv"
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed"]
PRICES = PriceTable.from_config({"sim-small": {"input_per_1k": 0.5, "output_per_1k": 2.0}})
QUESTION = [{"role": "user", "content": "my card has still not arrived"}]

Serve = Callable[..., SimulatorServer]


@pytest.fixture(scope="module")
def answerer() -> TfidfAnswerer:
    """A real TF-IDF + LR model on a few hundred BANKING77 rows answers for the simulator."""
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    return TfidfAnswerer.from_csv(DATA, limit=400)


@pytest.fixture
def serve(answerer: TfidfAnswerer) -> Serve:
    """Build a simulator server with the given settings; use it with ``async with``."""

    def build(**settings: Any) -> SimulatorServer:
        return SimulatorServer(ModelSimulator(answerer, SimulatorSettings(seed=7, **settings)))

    return build


def client(server: SimulatorServer, **settings: Any) -> OpenAIClient:
    """A client for the server, priced with PRICES."""
    return OpenAIClient(ClientSettings(server.base_url, **settings), prices=PRICES, policy=LOCAL)


class TestStructuredOutput:
    async def test_chat_model_answers_with_a_label_and_confidence(
        self, serve: Serve, answerer: TfidfAnswerer
    ) -> None:
        """ChatModel returns the served model's label among the labels, with its confidence."""
        text = "my card has still not arrived"
        expected = await answerer.predict(ModelRequest(text, labels=LABELS))
        async with serve() as server, client(server) as http:
            model = ChatModel(http, name="sim-small", labels=LABELS)
            result = await model.predict(ModelRequest(text))
        assert result.model == "sim-small"
        assert result.label == expected.label
        assert result.label in LABELS
        assert result.confidence == pytest.approx(expected.confidence, abs=1e-4)
        assert set(result.output) == {"label", "confidence"}

    async def test_usage_is_read_and_priced(self, serve: Serve) -> None:
        """Tokens come from the answer's usage and cost from the price table."""
        async with serve() as server, client(server) as http:
            answer = await http.chat("sim-small", QUESTION, output=JsonOutput(label_schema(LABELS)))
        assert answer.usage.input_tokens > 0
        assert answer.usage.output_tokens > 0
        expected = PRICES["sim-small"].cost(answer.usage)
        assert answer.cost == pytest.approx(expected)
        assert answer.cost == pytest.approx(
            answer.usage.input_tokens * 0.0005 + answer.usage.output_tokens * 0.002
        )
        assert answer.system_fingerprint == "sluice-simulator"
        assert answer.output is not None
        assert answer.output["label"] in LABELS

    async def test_plain_chat_returns_text_without_parsing(self, serve: Serve) -> None:
        """Without an output schema the content comes back as text and is not validated."""
        async with serve() as server, client(server) as http:
            answer = await http.chat("sim-small", QUESTION)
            assert await http.models() == ["sim-tfidf"]
        assert answer.output is None
        assert answer.content.startswith('{"label":')

    async def test_off_schema_answer_is_a_clear_non_retryable_error(self, serve: Serve) -> None:
        """An answer that breaks the schema raises ModelOutputError naming the field."""
        async with serve(invalid_rate=1.0) as server, client(server) as http:
            model = ChatModel(http, name="sim-small", labels=LABELS)
            with pytest.raises(ModelOutputError, match="at confidence: 'high' is not of type") as e:
                await model.predict(ModelRequest("my card has still not arrived"))
        assert e.value.retryable is False
        assert '"high"' in e.value.content

    def test_answer_that_is_not_json_is_rejected(self) -> None:
        """Text that is not JSON is an output error, not a crash."""
        with pytest.raises(ModelOutputError, match="not JSON"):
            JsonOutput(label_schema(LABELS)).parse('{"label": "card_arr')

    def test_invalid_schema_is_a_config_error(self) -> None:
        """A schema that is not a JSON Schema is refused when it is built."""
        with pytest.raises(ConfigError, match="invalid output schema"):
            JsonOutput({"type": "no-such-type"})


class TestErrors:
    async def test_429_is_retryable_after_the_servers_delay(self, serve: Serve) -> None:
        """A 429 becomes a retryable StepError carrying Retry-After."""
        async with serve(throttle_rate=1.0, retry_after_s=2.5) as server, client(server) as http:
            with pytest.raises(StepError, match="answered 429") as caught:
                await http.chat("sim-small", QUESTION)
        assert caught.value.retryable is True
        assert caught.value.retry_after == 2.5

    async def test_500_is_retryable(self, serve: Serve) -> None:
        """A 500 becomes a retryable StepError with no delay of its own."""
        async with serve(error_rate=1.0) as server, client(server) as http:
            with pytest.raises(StepError, match="answered 500: simulated server error") as caught:
                await http.chat("sim-small", QUESTION)
        assert caught.value.retryable is True
        assert caught.value.retry_after is None

    async def test_timeout_is_retryable(self, serve: Serve) -> None:
        """No answer within the timeout becomes a retryable StepError."""
        async with serve(p50_ms=500, p95_ms=500) as server, client(server) as http:
            with pytest.raises(StepError, match=r"no answer within 0\.1 s") as caught:
                await http.chat("sim-small", QUESTION, timeout_s=0.1)
        assert caught.value.retryable is True

    async def test_400_and_401_are_not_retryable(self, serve: Serve) -> None:
        """Requests the server refuses as wrong are not retried."""
        async with serve(api_key="right") as server:
            async with client(server, api_key="wrong") as http:
                with pytest.raises(StepError, match="answered 401") as unauthorized:
                    await http.chat("sim-small", QUESTION)
            async with client(server, api_key="right") as http:
                with pytest.raises(StepError, match="answered 400") as bad:
                    await http.chat("sim-small", [])
                assert (await http.chat("sim-small", QUESTION)).content
        assert unauthorized.value.retryable is False
        assert bad.value.retryable is False

    async def test_refused_connection_is_retryable(self, serve: Serve) -> None:
        """A server that is not listening gives a retryable error."""
        async with serve() as server:
            url = server.base_url
        async with OpenAIClient(ClientSettings(url, connect_timeout_s=1), policy=LOCAL) as http:
            with pytest.raises(StepError, match="ClientConnectorError") as caught:
                await http.chat("sim-small", QUESTION)
        assert caught.value.retryable is True

    async def test_oversized_answer_is_refused(self, serve: Serve) -> None:
        """An answer larger than max_response_bytes is never buffered whole."""
        async with serve() as server, client(server, max_response_bytes=100) as http:
            with pytest.raises(ModelOutputError, match="exceeds 100"):
                await http.chat("sim-small", QUESTION)

    def test_retry_after_forms(self) -> None:
        """Retry-After is read as seconds, as an HTTP date, or from retry-after-ms."""
        now = 1_800_000_000.0
        date = email.utils.formatdate(now + 30, usegmt=True)
        assert parse_retry_after({"Retry-After": "3"}) == 3.0
        assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(30.0)
        assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "1"}) == 0.25
        assert parse_retry_after({"Retry-After": "soon"}) is None
        assert parse_retry_after({}) is None


class TestChatModel:
    async def test_model_without_price_is_refused_up_front(self, serve: Serve) -> None:
        """A priced client refuses a ChatModel whose name has no price."""
        async with serve() as server, client(server) as http:
            with pytest.raises(ConfigError, match="no price configured for model 'gpt-x'"):
                ChatModel(http, name="gpt-x", labels=LABELS)

    async def test_no_labels_is_not_retryable(self, serve: Serve) -> None:
        """A classification request with no labels anywhere fails without a call."""
        async with serve() as server, client(server) as http:
            model = ChatModel(http, name="sim-small")
            with pytest.raises(StepError, match="no labels") as caught:
                await model.predict(ModelRequest("hello"))
        assert caught.value.retryable is False
        assert server.simulator.stats.requests == 0

    async def test_closed_client_refuses_work(self, serve: Serve) -> None:
        """After aclose() the client raises instead of reopening connections."""
        async with serve() as server:
            http = client(server)
            await http.chat("sim-small", QUESTION)
            await http.aclose()
            with pytest.raises(StepError, match="closed"):
                await http.chat("sim-small", QUESTION)

    def test_version_names_the_remote_model(self) -> None:
        """The version changes when the provider's model id does."""
        http = OpenAIClient(ClientSettings("http://127.0.0.1:9/v1"), policy=LOCAL)
        model = ChatModel(http, name="small", remote_model="gpt-4o-mini", version="3")
        assert (model.name, model.version) == ("small", "gpt-4o-mini@3")
        assert Usage() == Usage(0, 0)


class TestBuilder:
    async def test_openai_entries_build_through_the_registry(self, serve: Serve) -> None:
        """`kind: openai` entries become ChatModels sharing one client per endpoint."""
        from sluice.models.registry import build_models

        async with serve(api_key="k") as server:
            spec = {
                "sim-small": {
                    "kind": "openai",
                    "base_url": server.base_url,
                    "model": "gpt-sim",
                    "api_key_env": "SIM_KEY",
                    "labels": LABELS,
                    "version": "2",
                }
            }
            async with ChatModelBuilder(
                prices=PRICES, environ={"SIM_KEY": "k"}, policy=LOCAL
            ) as builder:
                models = build_models(
                    spec,
                    Path("."),
                    builders={"openai": builder},
                    validators={"openai": builder.validate},
                )
                result = await models["sim-small"].predict(ModelRequest("card not arrived"))
        assert models["sim-small"].version == "gpt-sim@2"
        assert result.label in LABELS
        assert result.cost > 0

    def test_entry_problems_carry_their_paths(self) -> None:
        """Every problem in an entry is reported with its path."""
        builder = ChatModelBuilder(prices=PRICES, environ={})
        entry = {
            "kind": "openai",
            "base_url": "localhost:8000",
            "api_key_env": "MISSING",
            "timeout_s": 0,
            "temprature": 0,
        }
        assert builder.validate("models.big", entry) == [
            "models.big.temprature: unknown key",
            "models.big.base_url: required, an http(s) URL ending in /v1",
            "models.big.api_key_env: environment variable MISSING is not set",
            "models.big.timeout_s: must be a positive number of seconds",
            "models.big: no price for it in prices.big",
        ]
