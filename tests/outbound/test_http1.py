"""The lean HTTP/1.1 relay client against real sockets: reuse, bounds, dropped connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sluice.outbound.http1 import Http1Error, Http1Pool
from sluice.outbound.policy import EgressPolicy

Handler = Callable[[int, bytes], Awaitable[bytes | None]]


class Server:
    """A tiny HTTP/1.1 server: ``handler(nth request on this connection, body)`` gives the
    answer's body, or None to drop the connection without answering."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            nth = 0
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                nth += 1
                answer = await self.handler(nth, body)
                if answer is None:
                    return
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(answer), answer))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    """Start servers on free ports; close them after the test."""
    started: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        server.server = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        started.append(server.server)
        return server

    yield start
    for server in started:
        server.close()


def pool(url: str, connections: int = 4, max_bytes: int = 1 << 20) -> Http1Pool:
    """A pool on ``url`` sending JSON."""
    headers = {"Content-Type": "application/json"}
    policy = EgressPolicy.loopback().only(url)  # the test servers listen on loopback
    return Http1Pool(url, headers, policy=policy, max_connections=connections, max_bytes=max_bytes)


async def echo(nth: int, body: bytes) -> bytes:
    """Answer with the body."""
    return body


async def test_answers_come_back_on_one_kept_alive_connection(serve: Callable[..., Any]) -> None:
    """Sequential requests reuse one connection; each gets its own answer."""
    server = await serve(echo)
    client = pool(server.url)
    answers = [await client.post(b'{"n": %d}' % i) for i in range(20)]
    await client.aclose()
    assert [a.body for a in answers] == [b'{"n": %d}' % i for i in range(20)]
    assert {a.status for a in answers} == {200}
    assert server.connections == 1


async def test_a_connection_dropped_before_answering_is_retried_once(
    serve: Callable[..., Any],
) -> None:
    """The server closes a kept-alive connection instead of answering its second request
    (as after an idle timeout): the request is sent again on a fresh connection."""

    async def drop_second(nth: int, body: bytes) -> bytes | None:
        return None if nth == 2 else body

    server = await serve(drop_second)
    client = pool(server.url)
    first = await client.post(b"1")
    second = await client.post(b"2")
    await client.aclose()
    assert (first.body, second.body) == (b"1", b"2")
    assert server.connections == 2


async def test_a_fresh_connection_dropped_is_an_error(serve: Callable[..., Any]) -> None:
    """A connection that never answered is not retried: the caller gets the failure."""

    async def drop(nth: int, body: bytes) -> None:
        return None

    server = await serve(drop)
    client = pool(server.url)
    with pytest.raises(Http1Error, match="closed"):
        await client.post(b"x")
    await client.aclose()


async def test_connections_are_bounded_and_callers_queue(serve: Callable[..., Any]) -> None:
    """Ten concurrent requests through a pool of two use two connections, and all succeed."""

    async def slow(nth: int, body: bytes) -> bytes:
        await asyncio.sleep(0.02)
        return body

    server = await serve(slow)
    client = pool(server.url, connections=2)
    answers = await asyncio.gather(*(client.post(b"%d" % i) for i in range(10)))
    await client.aclose()
    assert sorted(a.body for a in answers) == [b"%d" % i for i in range(10)]
    assert server.most_open == 2


async def test_an_answer_over_the_bound_is_refused(serve: Callable[..., Any]) -> None:
    """A provider answering more than ``max_bytes`` fails the request."""

    async def big(nth: int, body: bytes) -> bytes:
        return b"x" * 5000

    server = await serve(big)
    client = pool(server.url, max_bytes=1000)
    with pytest.raises(Http1Error, match="exceeds 1000 bytes"):
        await client.post(b"x")
    await client.aclose()


async def test_a_cancelled_request_gives_its_connection_up(serve: Callable[..., Any]) -> None:
    """A request cut by its deadline drops its connection (its answer may still come), and
    the pool carries on with a new one."""

    async def first_slow(nth: int, body: bytes) -> bytes:
        if body == b"slow":
            await asyncio.sleep(1)
        return body

    server = await serve(first_slow)
    client = pool(server.url, connections=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.post(b"slow")
    answer = await client.post(b"fast")
    await client.aclose()
    assert answer.body == b"fast"
    assert server.connections == 2
