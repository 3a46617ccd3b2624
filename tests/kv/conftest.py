"""KV fixtures: every KV implementation runs one contract suite.

Redis is reached at ``SLUICE_TEST_REDIS`` (default: the local server); a missing server fails
the tests rather than skipping them. Each test uses a key prefix of its own, deleted after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from sluice.kv.base import KV
from sluice.kv.fallback import FallbackKV
from sluice.kv.memory import MemoryKV
from sluice.kv.redis import RedisKV
from sluice.testing import free_port

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def new_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test:{uuid.uuid4().hex[:12]}:"


def patient_redis(prefix: str) -> RedisKV:
    """A Redis KV for tests about values, not latency: on a loaded machine fifty connections
    opened at once take longer than the production 250 ms, and a timeout there would fail a
    test of something else."""
    return RedisKV(REDIS_URL, prefix=prefix, connect_timeout_s=10, timeout_s=10)


@pytest.fixture(params=["memory", "redis", "fallback", "fallback-local"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KV]:
    """An open, empty KV of each kind.

    ``fallback`` is :class:`FallbackKV` over a live Redis; ``fallback-local`` is one whose Redis
    cannot be reached (a closed port), so every call is answered by its local state.
    """
    if request.param == "memory":
        async with MemoryKV() as impl:
            yield impl
        return
    if request.param == "fallback-local":
        async with FallbackKV(RedisKV(f"redis://127.0.0.1:{free_port()}/0")) as away:
            assert not away.using_primary
            yield away
        return
    redis_kv = patient_redis(new_prefix())
    impl_kv: KV = FallbackKV(redis_kv) if request.param == "fallback" else redis_kv
    await impl_kv.open()
    try:
        yield impl_kv
    finally:
        await redis_kv.delete_prefix()
        await impl_kv.aclose()


class TcpProxy:
    """A real TCP relay in front of Redis that a test can take down and bring back."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (again) on the same port."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones, like a Redis that went away."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        tasks = [
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ]
        self._pipes.update(tasks)
        for task in tasks:
            task.add_done_callback(self._pipes.discard)


@pytest.fixture
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    """A running proxy to the test Redis."""
    host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
