"""A lean pooled HTTP/1.1 client for relaying complete (non-streamed) completions.

The gateway's hot path is one POST to a provider and one answer back. A general client
(aiohttp) spends most of its time on features this relay does not use (cookies, redirects,
header multidicts, tracing hooks, per-request timeout objects); on two cores that was about
half of the gateway's own cost per request. Here a request is one pre-built header block plus
the body, written on a kept-alive connection, and the answer is parsed by ``httptools`` (the
C parser uvicorn serves with) into a status, the two retry headers and the body.

Bounds: at most ``max_connections`` connections per deployment (callers queue for one), a
total time per request (the connection is dropped when it passes, since the answer's bytes
might still arrive), an answer size (``max_bytes``). A kept-alive connection the server
closed while idle is detected when the request fails before any answer byte, and the request
is sent once more on a fresh connection; any other failure is the caller's to handle.

Egress: each new connection admits the URL and resolves its host through the
:class:`~sluice.outbound.policy.EgressPolicy`, then connects to a checked address (TLS and
``Host`` keep the name), or, with ``outbound.proxy``, opens a ``CONNECT`` tunnel to that
address through the proxy. Redirects are not followed: a 3xx is the caller's answer.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

from sluice.outbound.policy import EgressPolicy


class Http1Error(Exception):
    """The connection failed or the answer was not HTTP; ``sent`` says if bytes came back."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete HTTP answer: status, retry headers (lower-cased names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


_KEPT_HEADERS = frozenset({b"retry-after", b"retry-after-ms"})


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.used = False
        self._reset()

    def _reset(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.answered = False

    # asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # uvloop leaves Nagle's algorithm on: a request would wait for the delayed ACK of
            # the previous answer (40 ms on Linux).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Http1Error(f"the answer is not valid HTTP: {exc}", answered=True))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = f"connection closed ({exc})" if exc else "connection closed by the server"
        self._fail(Http1Error(reason, answered=self.answered))

    # httptools callbacks ------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in _KEPT_HEADERS:
            self.headers[name.decode()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > self.max_bytes:
            self._fail(Http1Error(f"answer exceeds {self.max_bytes} bytes", answered=True))

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if not self.parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self.parser.get_status_code(), self.headers, bytes(self.body)))

    # use ----------------------------------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._reset()
        self.used = True
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def _fail(self, exc: Http1Error) -> None:
        waiter, self.waiter = self.waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Http1Pool:
    """Kept-alive connections to one origin, POSTing to one path."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        policy: EgressPolicy,
        max_connections: int,
        max_bytes: int,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self.policy = policy
        target = policy.admit(url, check_allowlist=False)  # the form only; calls check it all
        self.host = target.host
        self.port = target.port
        self.ssl = ssl.create_default_context() if target.scheme == "https" else None
        parts = URL(url)
        authority = parts.raw_authority.rpartition("@")[2]
        lines = [f"POST {parts.raw_path or '/'} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        self.connect_timeout_s = connect_timeout_s
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def post(self, body: bytes) -> Answer:
        """POST ``body``; the caller bounds the time (a cancelled request drops its connection)."""
        data = self._head + str(len(body)).encode() + b"\r\n\r\n" + body
        for attempt in range(2):
            connection = await self._acquire()
            reused = connection.used
            try:
                answer = await connection.send(data)
            except Http1Error as exc:
                self._drop(connection)
                if reused and not exc.answered and attempt == 0:
                    continue  # the server closed it while idle: once more, on a fresh one
                raise
            except BaseException:
                self._drop(connection)  # cancelled or timed out mid-answer: unusable
                raise
            self._release(connection)
            return answer
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close every idle connection; busy ones close when their request ends."""
        self._closed = True
        while self._idle:
            self._idle.popleft().close()
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_exception(Http1Error("the pool is closed"))

    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise Http1Error("the pool is closed")
            while self._idle:
                connection = self._idle.pop()  # the most recently used is the likeliest alive
                if not connection.closed:
                    return connection
                self._open -= 1
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queue.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._queue:
                    self._queue.remove(waiter)
                elif not waiter.cancelled():
                    self._wake()  # woken, but leaving: pass the turn on
                raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self.policy.admit(self.url)  # an EgressDeniedError goes to the caller as it is
        addresses = await self.policy.resolve(self.host, self.port, shown=self.url)
        server_hostname = self.host if self.ssl is not None else None
        failures = []
        for address in addresses:  # the checked addresses only, never a new lookup
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    if self.policy.proxy:
                        sock = await _tunnel(self.policy.proxy, address, self.port)
                        _, connection = await loop.create_connection(
                            lambda: _Connection(self.max_bytes), sock=sock, ssl=self.ssl,
                            server_hostname=server_hostname,
                        )  # fmt: skip
                    else:
                        _, connection = await loop.create_connection(
                            lambda: _Connection(self.max_bytes), address, self.port,
                            ssl=self.ssl, server_hostname=server_hostname,
                        )  # fmt: skip
                return connection
            except (OSError, TimeoutError) as exc:
                failures.append(f"{address}: {exc or type(exc).__name__}")
        raise Http1Error(f"cannot connect to {self.host}:{self.port}: {'; '.join(failures)}")

    def _release(self, connection: _Connection) -> None:
        if connection.closed or self._closed:
            self._drop(connection)
            return
        self._idle.append(connection)
        self._wake()

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


_MAX_PROXY_HEAD = 16 * 1024


async def _tunnel(proxy: str, address: str, port: int) -> socket.socket:
    """A socket tunnelled through the HTTP proxy to ``address:port`` (``CONNECT``), so the
    proxy is asked for the checked address rather than the name."""
    loop = asyncio.get_running_loop()
    where = URL(proxy)
    infos = await loop.getaddrinfo(where.raw_host, where.port, type=socket.SOCK_STREAM)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, sockaddr)
        authority = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
        await loop.sock_sendall(sock, request.encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head:
            # One byte at a time: nothing past the proxy's answer may be read off the tunnel.
            chunk = await loop.sock_recv(sock, 1)
            if not chunk or len(head) > _MAX_PROXY_HEAD:
                raise OSError(f"proxy {proxy} closed or sent an oversized answer to CONNECT")
            head += chunk
        status = head.split(b"\r\n", 1)[0].split(b" ")
        if len(status) < 2 or status[1] != b"200":
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            raise OSError(f"proxy {proxy} refused CONNECT {authority}: {line}")
    except BaseException:
        sock.close()
        raise
    return sock
