"""Generated text as it is produced: the model client reading a streamed answer from the
simulator, and the bounded subscriptions waiting callers read it from."""

from __future__ import annotations

import asyncio

import pytest

from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.models.openai_client import ClientSettings, ModelOutputError, OpenAIClient
from sluice.models.prices import PriceTable
from sluice.outbound.policy import EgressPolicy
from sluice.steps.generate_stream import StepTextSink, TextStreams
from tests.steps.test_generate import FixedLabel

LOCAL = EgressPolicy.loopback()  # the simulator listens on 127.0.0.1
MESSAGES = [{"role": "user", "content": "Where is my new card? It has been two weeks."}]


async def test_the_client_reads_a_streamed_answer_as_it_comes() -> None:
    """With ``on_text`` the answer is asked for streamed: the deltas arrive in pieces, join
    into the same text and usage as the unstreamed answer, and are priced alike."""
    settings = SimulatorSettings(mode="generate", seed=7, stream_chunk_ms=1)
    prices = PriceTable.from_config({"llm": {"input_per_1k": 0.001, "output_per_1k": 0.002}})
    simulator = ModelSimulator(FixedLabel(), settings)
    async with (
        SimulatorServer(simulator) as server,
        OpenAIClient(ClientSettings(server.base_url), prices=prices, policy=LOCAL) as client,
    ):
        pieces: list[str] = []
        streamed = await client.chat("llm", MESSAGES, params={"max_tokens": 100},
                                     on_text=pieces.append)  # fmt: skip
        whole = await client.chat("llm", MESSAGES, params={"max_tokens": 100})
    assert len(pieces) > 2
    assert "".join(pieces) == streamed.content == whole.content
    assert streamed.usage == whole.usage
    assert streamed.usage.output_tokens > 0
    assert streamed.cost == whole.cost > 0
    assert simulator.stats.streams_cancelled == 0


async def test_a_streamed_answer_past_the_size_bound_fails() -> None:
    """A stream is bounded like a body: past ``max_response_bytes`` the call fails, not
    retried."""
    settings = SimulatorSettings(mode="generate", seed=7)
    async with (
        SimulatorServer(ModelSimulator(FixedLabel(), settings)) as server,
        OpenAIClient(
            ClientSettings(server.base_url, max_response_bytes=300), policy=LOCAL
        ) as client,
    ):
        with pytest.raises(ModelOutputError) as error:
            await client.chat("llm", MESSAGES, params={"max_tokens": 200}, on_text=print)
    assert "exceeds 300 bytes" in str(error.value)
    assert error.value.retryable is False


async def test_pieces_of_one_call_waiting_together_are_joined() -> None:
    """A slow reader gets fewer, larger pieces, in order; a new call is a new piece."""
    streams = TextStreams()
    subscription = streams.subscribe("evt", ttl_s=10)
    assert subscription is not None
    sink = StepTextSink(streams, "evt", "draft")
    sink.begin()
    for piece in ("Your ", "card ", "is on its way."):
        sink.write(piece)
    sink.begin()
    sink.write("Sorry: ")
    first = await subscription.next()
    assert first == {"step": "draft", "call": 1, "text": "Your card is on its way."}
    assert subscription.drain() == [{"step": "draft", "call": 2, "text": "Sorry: "}]
    subscription.close()
    subscription.close()  # twice is harmless
    assert streams.open == 0
    assert not streams.listening("evt")


async def test_a_reader_too_far_behind_gets_no_more_text() -> None:
    """Past ``max_chars`` unsent the subscription keeps what it holds and drops the rest
    (``lagged``); the publisher never waits."""
    streams = TextStreams(max_chars=10)
    subscription = streams.subscribe("evt", ttl_s=10)
    assert subscription is not None
    streams.publish("evt", "draft", 1, "0123456789")
    streams.publish("evt", "draft", 1, "more")
    assert subscription.lagged
    assert subscription.drain() == [{"step": "draft", "call": 1, "text": "0123456789"}]
    streams.publish("evt", "draft", 1, "x")
    assert subscription.drain() == []


async def test_subscriptions_are_bounded_and_expire() -> None:
    """At most ``max_subscribers``: one more gets None until an expired one is dropped."""
    streams = TextStreams(max_subscribers=2)
    assert streams.subscribe("a", ttl_s=0.01) is not None
    assert streams.subscribe("b", ttl_s=10) is not None
    assert streams.subscribe("c", ttl_s=10) is None
    await asyncio.sleep(0.05)
    assert streams.subscribe("c", ttl_s=10) is not None
    assert not streams.listening("a")
    assert streams.open == 2
