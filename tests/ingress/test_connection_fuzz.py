"""Hostile connections against a real ``sluice serve``, over raw sockets.

Header sizes and counts, duplicates, CR/LF, malformed request lines, slow senders, half-closed
sockets and aborted uploads, each while valid API runs keep flowing on other connections.
Everywhere: no 5xx, every refusal a problem document with its correlation id, the server alive
and valid traffic served throughout. Each test is bounded to a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingress.serving import (
    Answer,
    Served,
    exchange,
    parse_answer,
    raise_nofile,
    sluice_serve,
    valid_flow,
)

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
KEEP_ALIVE_S = 1
OPTIONS = (
    "--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout", str(BODY_TIMEOUT_S),
    "--keep-alive-timeout", str(KEEP_ALIVE_S),
)  # fmt: skip
HOOK = b"POST /v1/hooks/helpdesk HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One real server for the module; afterwards it must be alive and have answered no 5xx."""
    raise_nofile()
    with sluice_serve(Path(tmp_path_factory.mktemp("conn-fuzz")), *OPTIONS) as server:
        yield server
        assert server.alive()
        assert not [s for s in server.statuses() if s.startswith("5")], server.statuses()


def _get(*headers: bytes, target: bytes = b"/healthz") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n" + b"".join(headers) + b"\r\n"


def _all_served(valid: list[int]) -> None:
    """Valid traffic flowed, and every request of it was accepted."""
    assert valid
    assert set(valid) == {202}, sorted(set(valid))


def _refused(answer: Answer, status: int) -> dict[str, object]:
    assert answer.status == status, answer
    return answer.problem()


@pytest.mark.parametrize(
    ("request_bytes", "status", "named"),
    [
        (_get(b"X-Big: " + b"a" * (1 << 20) + b"\r\n"), 431, "65536 bytes"),
        (_get(*(b"X-H%d: 1\r\n" % i for i in range(5_000))), 431, "100 request headers"),
        (_get(*(b"X-H%d: %s\r\n" % (i, b"b" * 1_000) for i in range(90))), 431, "65536 bytes"),
        (_get(target=b"/" + b"p" * 70_000), 431, "65536 bytes"),
        (_get(*(b"X-H%d: 1\r\n" % i for i in range(90))), 200, None),
        (_get(b"X-Big: " + b"a" * 60_000 + b"\r\n"), 200, None),
    ],
    ids=["1MB-header", "5000-headers", "90KB-headers", "70KB-url", "90-headers", "60KB-header"],
)
async def test_header_limits(
    served: Served, request_bytes: bytes, status: int, named: str | None
) -> None:
    """Past the header size or count: 431 naming the limit; within them: served."""
    async with valid_flow(served) as valid:
        answer = await exchange(served.host, served.port, request_bytes)
    assert answer.status == status, answer
    if named is not None:
        assert named in str(answer.problem()["detail"])
    _all_served(valid)


MALFORMED = {
    "duplicate-content-length": HOOK + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    "conflicting-content-length": HOOK + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "length-and-chunked": HOOK + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
    "bad-content-length": HOOK + b"Content-Length: 2x\r\n\r\n{}",
    "bad-chunk-size": HOOK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "cr-in-value": _get(b"X-Inject: a\rSet-Cookie: x=1\r\n"),
    "lf-in-value": _get(b"X-Inject: a\nSet-Cookie: x=1\r\n"),
    "nul-in-value": _get(b"X-Nul: a\x00b\r\n"),
    "space-before-colon": _get(b"X-Space : 1\r\n"),
    "no-colon": _get(b"NoColonHere\r\n"),
    "bare-lf-lines": b"GET /healthz HTTP/1.1\nHost: t\n\n",
    "garbage-line": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "bad-method": b"G=T /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    "bad-version": b"GET /healthz HTTP/9.x\r\nHost: t\r\n\r\n",
    "space-in-url": b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n",
    "non-ascii-url": b"GET /\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",
    "crlf-in-url": b"GET /a\rX: y HTTP/1.1\r\nHost: t\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_requests_are_400(served: Served, request_bytes: bytes) -> None:
    """Smuggling and injection attempts, broken request lines: 400 problem+json, no 5xx."""
    async with valid_flow(served) as valid:
        answer = await exchange(served.host, served.port, request_bytes)
    _refused(answer, 400)
    assert "malformed HTTP request" in str(answer.problem()["detail"])
    _all_served(valid)


async def test_mutated_requests_never_5xx(served: Served) -> None:
    """Valid requests with random bytes flipped, inserted, duplicated or cut: whatever the
    server answers is below 500, and every refusal is a problem document."""
    rng = random.Random(20)
    body = b'{"ticket": {"description": "card lost", "subject": "s"}}'
    base = HOOK + b"Webhook-Id: m1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    noise = [b"\r", b"\n", b"\r\n", b"\x00", b":", b" ", b"\xff", b"Content-Length: 9\r\n"]

    def mutate() -> bytes:
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            match rng.randrange(4):
                case 0:
                    data[at] = rng.randrange(256)
                case 1:
                    data[at:at] = rng.choice(noise)
                case 2:
                    line = data.find(b"\r\n", at)
                    data[at:at] = data[at:line] if line > at else b""
                case _:
                    del data[at:]
        return bytes(data)

    cases = [mutate() for _ in range(150)]
    gate = asyncio.Semaphore(25)

    async def one(data: bytes) -> Answer:
        async with gate:
            return await exchange(served.host, served.port, data, half_close=True)

    async with valid_flow(served) as valid:
        answers = await asyncio.gather(*(one(c) for c in cases))
    for answer in answers:
        assert answer.status is None or answer.status < 500, answer
        if answer.status is not None and answer.status >= 400:
            answer.problem()
    _all_served(valid)
    assert served.alive()


async def _trickle(served: Served, head: bytes, data: bytes, every_s: float) -> tuple[Answer, int]:
    """Send ``head`` at once, then ``data`` a byte at a time ``every_s`` apart, until the
    server answers or closes; the answer and how many bytes of ``data`` went out."""
    reader, writer = await asyncio.open_connection(served.host, served.port)
    answer = asyncio.create_task(reader.read())  # the server answers, then closes
    sent = 0
    try:
        writer.write(head)
        for byte in data:
            if answer.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
                await writer.drain()
            sent += 1
            await asyncio.sleep(every_s)
        async with asyncio.timeout(10):
            try:
                raw = await answer
            except ConnectionError:
                raw = b""
    finally:
        writer.close()
    return parse_answer(raw), sent


async def test_slow_senders_get_408(served: Served) -> None:
    """Headers or a body sent a byte every 0.1 s: the whole-message deadlines cut them (a
    per-read timeout would not), with a 408 problem document."""
    headers = _get(b"X-Pad: " + b"p" * 200 + b"\r\n")
    body = b'{"ticket": {"description": "' + b"x" * 200 + b'"}}'
    slow_body = HOOK + b"Content-Length: %d\r\n\r\n" % len(body)
    async with valid_flow(served) as valid:
        (late_headers, sent_h), (late_body, sent_b) = await asyncio.gather(
            _trickle(served, b"", headers, 0.1), _trickle(served, slow_body, body, 0.1)
        )
    assert "request headers took longer" in str(_refused(late_headers, 408)["detail"])
    assert sent_h < len(headers)  # cut before all of it was sent
    assert "request body took longer" in str(_refused(late_body, 408)["detail"])
    assert sent_b < len(body)
    _all_served(valid)


async def test_idle_keep_alive_is_closed(served: Served) -> None:
    """A connection idle after its answer is closed after the keep-alive time."""
    reader, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(_get())
    await writer.drain()
    async with asyncio.timeout(10):
        first = await reader.readuntil(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200")
        while await reader.read(65536):  # the body, then the close
            pass
    writer.close()


async def test_half_closed_sockets(served: Served) -> None:
    """A client that shuts its sending side, after a whole request or in the middle of one:
    the server answers or closes, and nothing fails."""
    cases = [_get(), _get()[:20], HOOK + b"Content-Length: 50\r\n\r\n{", b""]
    async with valid_flow(served) as valid:
        answers = await asyncio.gather(
            *(exchange(served.host, served.port, c, half_close=True) for c in cases * 5)
        )
    for answer in answers:
        assert answer.status is None or answer.status < 500, answer
    _all_served(valid)
    assert served.alive()


async def test_aborted_uploads_are_499_not_500(served: Served) -> None:
    """Uploads cut mid-body, by a clean close or a reset: no 500 counted, 499s are."""
    before = served.statuses().get("499", 0.0)

    async def abort(reset: bool) -> None:
        _, writer = await asyncio.open_connection(served.host, served.port)
        writer.write(HOOK + b"Content-Length: 5000\r\n\r\n" + b'{"ticket": ' + b" " * 1000)
        await writer.drain()
        await asyncio.sleep(0.2)  # the app is waiting for the rest of the body
        if reset:  # an RST instead of a FIN
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    async with valid_flow(served) as valid:
        await asyncio.gather(*(abort(i % 2 == 0) for i in range(20)))
        for _ in range(100):  # the server counts them as it notices: up to 10 s
            if served.statuses().get("499", 0.0) >= before + 20:
                break
            await asyncio.sleep(0.1)
    assert served.statuses().get("499", 0.0) >= before + 20
    assert not [s for s in served.statuses() if s.startswith("5")]
    _all_served(valid)


def _answers(raw: bytes) -> list[Answer]:
    """Every response in ``raw``, in order (each with a Content-Length)."""
    answers = []
    while raw:
        answer = parse_answer(raw)
        answers.append(answer)
        head_end = raw.index(b"\r\n\r\n") + 4
        raw = raw[head_end + int(answer.headers.get("content-length", "0")) :]
    return answers


async def _read_all(served: Served, data: bytes) -> list[Answer]:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(10):  # the server closes: keep-alive or a deadline
            raw = await reader.read()
    finally:
        writer.close()
    return _answers(raw)


async def test_pipelined_requests(served: Served) -> None:
    """Requests sent back to back are answered in order; a pipelined request left unfinished
    is cut by its header deadline after the earlier answers, never inside them."""
    async with valid_flow(served) as valid:
        both = await _read_all(served, _get() + _get(target=b"/nope"))
        cut = await _read_all(served, _get() + b"GET /healthz HTTP/1.1\r\nHost:")
        upgrade = await _read_all(
            served, _get(b"Connection: Upgrade\r\n", b"Upgrade: websocket\r\n")
        )
    assert [a.status for a in both] == [200, 404]
    assert both[0].body == b'{"status":"ok"}'
    both[1].problem()
    assert [a.status for a in cut] == [200, 408]
    assert cut[0].body == b'{"status":"ok"}'
    assert "request headers took longer" in str(cut[1].problem()["detail"])
    assert [a.status for a in upgrade] == [200]  # no upgrades: answered as plain HTTP
    _all_served(valid)
