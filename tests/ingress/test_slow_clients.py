"""1,000+ slow connections held against a real ``sluice serve`` while valid clients are served.

Before the server had deadlines, ~1,000 connections that sent a request line and one header,
then nothing, made every valid request get ``503 text/plain`` (uvicorn counted them against
its concurrency cap) and stayed open indefinitely. The slow clients here come from twenty
loopback addresses (127.0.0.2-21, 50 connections each, under the per-address cap); the cap
itself is shown refusing a 101st connection from one address. No timing is asserted beyond
the order of events: latency figures are ``bench/slow_clients.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingress.serving import (
    Served,
    exchange,
    parse_answer,
    raise_nofile,
    sluice_serve,
    valid_flow,
)

HEADER_TIMEOUT_S = 12.0  # long enough that the valid traffic runs while all are held
PER_CLIENT = 100
OPTIONS = (
    "--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout", str(HEADER_TIMEOUT_S),
    "--max-connections-per-client", str(PER_CLIENT),
)  # fmt: skip
SLOW_HEADERS = 1_000
SLOW_BODIES = 100
PER_ADDRESS = 50


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real server with the default limits except the ones named in ``OPTIONS``."""
    raise_nofile()
    with sluice_serve(Path(tmp_path_factory.mktemp("slow")), *OPTIONS) as server:
        yield server


class Slow:
    """One held connection: what it sent, and when and how the server ended it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ended: asyncio.Task[bytes] = asyncio.create_task(self._wait_end())

    async def _wait_end(self) -> bytes:
        try:
            return await self.reader.read()  # whatever the server says, up to its close
        except ConnectionError:
            return b""


async def _hold(served: Served, source: str, data: bytes) -> Slow:
    reader, writer = await asyncio.open_connection(served.host, served.port, local_addr=(source, 0))
    writer.write(data)
    await writer.drain()
    return Slow(reader, writer)


async def test_valid_clients_are_served_while_1000_slow_connections_are_held(
    served: Served,
) -> None:
    """1,000 half-sent headers and 100 half-sent bodies held: every valid request is
    accepted (no 503), and the server closes the slow connections after its deadlines."""
    loop = asyncio.get_running_loop()
    head = b"POST /v1/workflows/tickets/runs HTTP/1.1\r\nHost: t\r\n"
    body_head = (
        b"POST /v1/hooks/helpdesk HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    gate = asyncio.Semaphore(100)

    async def hold(index: int, data: bytes) -> Slow:
        async with gate:
            return await _hold(served, f"127.0.0.{2 + index // PER_ADDRESS}", data)

    opened_at = loop.time()
    slow = await asyncio.gather(*(hold(i, head) for i in range(SLOW_HEADERS)))
    slow += await asyncio.gather(*(hold(SLOW_HEADERS + i, body_head) for i in range(SLOW_BODIES)))
    assert not [s for s in slow if s.ended.done()]  # all held when valid traffic starts

    async with valid_flow(served, concurrency=8) as valid:
        for _ in range(1_200):  # 400 requests, within a minute at the very most
            if len(valid) >= 400:
                break
            await asyncio.sleep(0.05)
    held = sum(not s.ended.done() for s in slow)
    assert len(valid) >= 400
    assert set(valid) == {202}, sorted(set(valid))
    assert held == len(slow)  # the valid requests were served while all were held

    async with asyncio.timeout(HEADER_TIMEOUT_S + 60):
        ends = await asyncio.gather(*(s.ended for s in slow))
    assert loop.time() - opened_at >= HEADER_TIMEOUT_S  # closed by the deadline, not before
    for raw in ends:
        answer = parse_answer(raw)
        assert answer.status == 408, answer  # and told why
        assert "took longer than" in str(answer.problem()["detail"])
    for s in slow:
        s.writer.close()
    assert served.alive()
    assert not [s for s in served.statuses() if s.startswith("5")]


async def test_connections_per_address_are_capped(served: Served) -> None:
    """The 101st open connection from one address is refused with 429; others are served."""
    source = "127.0.0.200"
    held = [await _hold(served, source, b"GET /healthz HTTP/1.1\r\n") for _ in range(PER_CLIENT)]
    reader, writer = await asyncio.open_connection(served.host, served.port, local_addr=(source, 0))
    async with asyncio.timeout(10):
        answer = parse_answer(await reader.read())
    writer.close()
    assert answer.status == 429, answer
    assert f"at most {PER_CLIENT} open connections" in str(answer.problem()["detail"])
    assert answer.headers["retry-after"]
    # Another address is not affected, and the refused address is served once it lets go.
    other = await exchange(served.host, served.port, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert other.status == 200
    for h in held:
        h.writer.close()
        with contextlib.suppress(ConnectionError):
            await h.writer.wait_closed()
    async with valid_flow(served) as valid:
        await asyncio.sleep(0.5)
    assert valid
    reader, writer = await asyncio.open_connection(served.host, served.port, local_addr=(source, 0))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    async with asyncio.timeout(10):
        assert parse_answer(await reader.read()).status == 200
    writer.close()
