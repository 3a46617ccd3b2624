"""A response's head and body leave in one write; nothing is delayed past one loop iteration."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from sluice.ingress.server import server_limits
from sluice.ingress.write_coalescing import CoalescingTransport
from sluice.testing import AsgiServer

HEAD = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n"


class _Recording(asyncio.Transport):
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("10.0.0.1", 5000) if name == "peername" else default


def _wrap() -> tuple[_Recording, CoalescingTransport]:
    raw = _Recording()
    return raw, CoalescingTransport(raw, asyncio.get_running_loop())


async def test_head_and_body_leave_in_one_write() -> None:
    """A head is held until the body, which leaves with it; other writes pass through."""
    raw, transport = _wrap()
    transport.write(HEAD)
    assert raw.writes == []
    assert transport.get_write_buffer_size() == len(HEAD)
    transport.write(b"{}")
    assert raw.writes == [HEAD + b"{}"]
    transport.write(b"more")  # not a head: straight through
    assert raw.writes == [HEAD + b"{}", b"more"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing held
    assert raw.writes == [HEAD + b"{}", b"more"]


async def test_a_lone_head_leaves_on_the_next_iteration() -> None:
    """A head with no body behind it yet (a slow stream) waits one loop iteration at most."""
    raw, transport = _wrap()
    transport.write(HEAD)
    await asyncio.sleep(0)
    assert raw.writes == [HEAD]
    transport.write(b"chunk")
    assert raw.writes == [HEAD, b"chunk"]


async def test_close_sends_the_held_head_first_and_abort_drops_it() -> None:
    """Closing sends the held head before closing; aborting drops it like unsent bytes."""
    raw, transport = _wrap()
    transport.write(HEAD)
    transport.close()
    assert raw.writes == [HEAD]
    assert raw.closed
    assert transport.is_closing()
    raw, transport = _wrap()
    transport.write(HEAD)
    transport.abort()
    await asyncio.sleep(0)
    assert raw.writes == []
    assert raw.aborted


async def test_a_head_held_when_the_client_leaves_is_not_written() -> None:
    """The connection closed under a held head (the client left): the flush writes nothing."""
    raw, transport = _wrap()
    transport.write(HEAD)
    raw.close()  # what the loop does when the peer goes away
    await asyncio.sleep(0)
    assert raw.writes == []


async def test_other_calls_reach_the_wrapped_transport() -> None:
    """Extra info and ``writelines`` go to the connection's transport."""
    raw, transport = _wrap()
    assert transport.get_extra_info("peername") == ("10.0.0.1", 5000)
    transport.writelines([b"a", b"b"])
    assert raw.writes == [b"ab"]


async def test_a_stream_over_the_real_server_gets_its_head_before_its_body() -> None:
    """Served like ``sluice serve``: a streamed response's head reaches the client while the
    app still waits to send its body (the app waits until the client has the head), and
    every chunk arrives in order."""
    head_seen = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await head_seen.wait()  # only the client can end this wait
        for chunk in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with (
        AsgiServer(app, limits=server_limits()) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        client.stream("GET", "/") as resp,
    ):
        assert resp.status_code == 200
        head_seen.set()
        assert await resp.aread() == b"one two three"
