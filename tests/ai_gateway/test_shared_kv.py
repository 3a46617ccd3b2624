"""Two AI-gateway app instances on one Redis KV answer alike: one cache, one set of keys.

As two ``sluice serve`` processes behind a load balancer would be: one app directory (one
store, one KV in Redis at ``SLUICE_TEST_REDIS``, under a prefix of this test's own), served
twice. A missing Redis fails these tests rather than skipping them.
"""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_answerer import TfidfAnswerer
from sluice.drills.simulator_server import SimulatorServer
from sluice.ingress.apikeys import create_api_key
from sluice.kv.redis import RedisKV
from tests.ai_gateway.conftest import gateway_config, serve_app, sim_stats
from tests.ai_gateway.test_chat import ask
from tests.kv.conftest import REDIS_URL, new_prefix


@dataclass
class Pair:
    """Two instances of one gateway app, a simulator behind them, and a tenant's key."""

    urls: tuple[str, str]
    primary: SimulatorServer
    key: str
    prefix: str

    async def chat(self, which: int, body: dict[str, object], **headers: str) -> httpx.Response:
        """``POST /v1/chat/completions`` on instance ``which`` (0 or 1)."""
        async with httpx.AsyncClient(base_url=self.urls[which], timeout=20) as http:
            return await http.post(
                "/v1/chat/completions",
                content=orjson.dumps(body),
                headers={
                    "authorization": f"Bearer {self.key}",
                    "content-type": "application/json",
                    **headers,
                },
            )


@pytest.fixture
async def pair(tmp_path: Path, answerer: TfidfAnswerer) -> AsyncIterator[Pair]:
    """Two app instances sharing one Redis KV (and one store), in front of two simulators."""
    stop: list[Callable[[], Awaitable[None]]] = []
    prefix = new_prefix()
    try:
        sims = []
        # A slow primary, so that concurrent repeats overlap the first request.
        for settings in (SimulatorSettings(p50_ms=150, p95_ms=200, seed=3), SimulatorSettings()):
            server = SimulatorServer(ModelSimulator(answerer, settings))
            await server.start()
            stop.append(server.aclose)
            sims.append(server)
        app_dir = tmp_path / "app"
        (app_dir / "workflows").mkdir(parents=True)
        config = textwrap.dedent(gateway_config(sims[0].port, sims[1].port))
        config += f'kv: "{REDIS_URL}?prefix={prefix}"\n'
        (app_dir / "sluice.yaml").write_text(config)
        first_url, first, first_stop = await serve_app(app_dir)
        stop.append(first_stop)
        second_url, _, second_stop = await serve_app(app_dir)
        stop.append(second_stop)
        _, key = await create_api_key(first.store, "acme", ("runner", "operator"))
        yield Pair((first_url, second_url), sims[0], key, prefix)
    finally:
        for close in reversed(stop):
            await close()
        redis_kv = RedisKV(REDIS_URL, prefix=prefix)
        await redis_kv.delete_prefix()
        await redis_kv.aclose()


def chat_body(text: str) -> dict[str, object]:
    """A chat completion request for group ``chat``."""
    return {"model": "chat", "messages": ask(text)}


async def test_a_cached_answer_is_served_by_the_other_instance(pair: Pair) -> None:
    """An answer cached through one instance is a hit on the other: one provider call."""
    body = chat_body("my card has not arrived yet")
    first = await pair.chat(0, body)
    second = await pair.chat(1, body)
    assert first.status_code == second.status_code == 200
    assert "x-sluice-cache" not in first.headers
    assert second.headers["x-sluice-cache"] == "hit"
    assert second.json()["id"] == first.json()["id"]
    assert (await sim_stats(pair.primary))["requests"] == 1


async def test_an_idempotency_key_is_known_to_the_other_instance(pair: Pair) -> None:
    """A key answered through one instance is replayed by the other, and guards its body."""
    body = chat_body("how do I top up my account")
    key = {"idempotency-key": "order-7", "x-sluice-cache": "bypass"}
    first = await pair.chat(0, body, **key)
    again = await pair.chat(1, body, **key)
    other = await pair.chat(1, chat_body("something else entirely"), **key)
    assert first.status_code == again.status_code == 200
    assert again.headers["x-sluice-idempotent-replay"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert (await sim_stats(pair.primary))["requests"] == 1


async def test_concurrent_repeats_on_both_instances_share_one_call(pair: Pair) -> None:
    """Repeats sent to both instances while the first runs wait for it: one provider call."""
    body = chat_body("why was my transfer declined")
    key = {"idempotency-key": "order-8", "x-sluice-cache": "bypass"}
    answers = await asyncio.gather(*(pair.chat(i % 2, body, **key) for i in range(6)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["id"] for a in answers}) == 1
    replays = [a.headers.get("x-sluice-idempotent-replay") for a in answers]
    assert replays.count("true") == 5
    assert (await sim_stats(pair.primary))["requests"] == 1


async def test_the_instances_keep_their_state_in_redis(pair: Pair) -> None:
    """The cache entry and the key live in Redis under the app's prefix, the key hashed."""
    key = uuid.uuid4().hex
    answer = await pair.chat(0, chat_body("lost card"), **{"idempotency-key": key})
    assert answer.status_code == 200
    redis = aioredis.from_url(REDIS_URL)
    try:
        stored = [k.decode() async for k in redis.scan_iter(match=pair.prefix + "*")]
    finally:
        await redis.aclose()
    assert any(k.startswith(pair.prefix + "cache:gateway:") for k in stored)
    assert any(k.startswith(pair.prefix + "gateway-idempotency:") for k in stored)
    assert not any(key in k for k in stored)  # the client's key itself is not stored
