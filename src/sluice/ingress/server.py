"""Serving the HTTP API: uvicorn's httptools protocol with deadlines and connection caps.

uvicorn alone has no time limit on receiving a request's headers or body and counts open
connections and requests in flight against one cap, so ~1,000 connections that send a request
line and then nothing made every valid request get a ``503 text/plain``. The protocol here
(:func:`hardened_protocol`) adds, per connection:

- a deadline for the request line and headers (``header_timeout_s``, from the first byte of a
  request, or from the connection's opening) and one for the body (``body_timeout_s``, from the
  end of the headers): past either, ``408`` and the connection is closed;
- caps on the header block (``max_header_bytes``, request line included) and the number of
  headers (``max_headers``): ``431`` naming the limit, before the app sees anything;
- a cap on open connections per client address (``max_connections_per_client``: ``429``) and
  in all (``max_connections``: ``503``), checked when a connection opens;
- a cap on requests in flight (``max_in_flight``: ``503`` with ``Retry-After``), counted apart
  from connections, so idle and slow connections never use it up;
- malformed requests (request line, CR/LF in headers, duplicate ``Content-Length``, bad URLs)
  answered ``400``.

Every refusal is an ``application/problem+json`` document with a correlation id (header and
body), like the app's own, counted in ``sluice_http_refused_total`` by reason, and logged at
DEBUG only: hostile input must not be able to flood the logs. The idle keep-alive time is
uvicorn's ``timeout_keep_alive`` (``keep_alive_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import httptools
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from sluice.errors import ConfigError
from sluice.ids import new_event_id
from sluice.ingress.problems import problem
from sluice.ingress.write_coalescing import CoalescingTransport

log = logging.getLogger("sluice.server")

#: Reasons a request or connection is refused by the server (the metric's only label values).
REFUSAL_REASONS = (
    "header_timeout",
    "body_timeout",
    "headers_too_large",
    "too_many_headers",
    "bad_request",
    "client_connections",
    "connections",
    "in_flight",
)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one serving process allows its clients (``ingress: {server: {...}}``).

    Behind a load balancer every connection comes from its few addresses: raise
    ``max_connections_per_client`` to ``max_connections`` there.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: int = 5
    max_connections: int = 8_192
    max_connections_per_client: int = 1_024
    max_in_flight: int = 1_000
    max_header_bytes: int = 65_536
    max_headers: int = 100


def server_limits(raw: Mapping[str, Any] | None = None, **overrides: float | None) -> ServerLimits:
    """Limits from the ``ingress.server`` mapping of ``sluice.yaml``, then ``overrides`` (the
    ``serve`` options; ``None`` keeps the configured value). Every problem is reported at once.
    """
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError("invalid server settings", ["ingress.server: must be a mapping"])
    given = {**(raw or {}), **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name: f for f in fields(ServerLimits)}
    problems = [f"ingress.server.{key}: unknown setting" for key in given if key not in known]
    values: dict[str, Any] = {}
    for key, value in given.items():
        if key not in known:
            continue
        integral = known[key].type == "int"
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or value <= 0
            or (integral and value != int(value))
        ):
            kind = "a positive whole number" if integral else "a positive number"
            problems.append(f"ingress.server.{key}: must be {kind}")
            continue
        values[key] = int(value) if integral else float(value)
    if problems:
        raise ConfigError("invalid server settings", problems)
    return replace(ServerLimits(), **values)


class _Refusal(Exception):  # noqa: N818 - a signal out of a parser callback, not an error
    """Raised inside a parser callback to stop parsing and answer with a problem."""

    def __init__(self, status: int, kind: str, title: str, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail, self.reason = (
            status, kind, title, detail, reason,
        )  # fmt: skip


def _problem_bytes(refusal: _Refusal, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 problem response that closes the connection."""
    cid = new_event_id()
    response = problem(
        refusal.status, refusal.kind, refusal.title, refusal.detail, headers, correlation_id=cid
    )
    head = [STATUS_LINE[refusal.status]]
    head += [name + b": " + value + b"\r\n" for name, value in response.raw_headers]
    head.append(b"x-correlation-id: " + cid.encode() + b"\r\nconnection: close\r\n\r\n")
    return b"".join(head) + bytes(response.body)


class _ConnectionBook:
    """Open connections of one server, in all and per client address."""

    def __init__(self, limits: ServerLimits, on_refusal: Callable[[str], None]) -> None:
        self.limits = limits
        self.on_refusal = on_refusal
        self.total = 0
        self.per_client: dict[str, int] = {}

    def admit(self, host: str) -> _Refusal | None:
        """Count a new connection from ``host``, or say why it is refused."""
        limits = self.limits
        if self.total >= limits.max_connections:
            return _Refusal(503, "too-many-connections", "Service Unavailable",
                            f"the server holds its maximum of {limits.max_connections} "
                            "connections", "connections")  # fmt: skip
        held = self.per_client.get(host, 0)
        if held >= limits.max_connections_per_client:
            return _Refusal(429, "too-many-connections", "Too Many Connections",
                            f"at most {limits.max_connections_per_client} open connections "
                            "per client address", "client_connections")  # fmt: skip
        self.total += 1
        self.per_client[host] = held + 1
        return None

    def release(self, host: str) -> None:
        """Forget one connection of ``host``."""
        self.total -= 1
        left = self.per_client[host] - 1
        if left:
            self.per_client[host] = left
        else:
            del self.per_client[host]


class HardenedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and caps of :class:`ServerLimits`.

    Use :func:`hardened_protocol`, which binds the limits and a connection book to a subclass.
    """

    limits: ClassVar[ServerLimits]
    book: ClassVar[_ConnectionBook]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = self.app
        self._host: str | None = None  # set while this connection is counted in the book
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0  # exact: request line and complete headers
        self._header_chunks = 0  # raw: chunks that arrived wholly inside the header block
        self._header_count = 0

    # Connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's narrower type
        super().connection_made(transport)
        # Each response's head and body leave in one ``send`` (flow control keeps the
        # connection's own transport, which reports to this protocol).
        self.transport = CoalescingTransport(transport, self.loop)
        host = self.client[0] if self.client else ""
        refusal = self.book.admit(host)
        if refusal is not None:
            self._refuse(refusal, {"Retry-After": "1"})
            return
        self._host = host
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._host is not None:
            self.book.release(self._host)
            self._host = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            # The first bytes of a new request on a kept-alive connection: the header clock
            # starts now, so one byte every few seconds cannot hold the connection forever.
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout_s, self._headers_late
            )
        began_in_headers = self._in_headers
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no upgrades are served: the request is answered as plain HTTP
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refusal):
                self._refuse(cause)
            else:
                self._refuse(_bad_request(f"malformed HTTP request ({cause})"))
            return
        except httptools.HttpParserError as exc:
            self._refuse(_bad_request(f"malformed HTTP request ({exc})"))
            return
        if began_in_headers and self._in_headers:
            # Headers still arriving: httptools buffers a header until it is complete, so
            # count raw bytes too, or one endless header would grow without a check.
            self._header_chunks += len(data)
            if self._header_chunks > self.limits.max_header_bytes:
                self._refuse(self._too_large())

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = self._header_chunks = self._header_count = 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout_s, self._headers_late
            )

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self.limits.max_header_bytes:
            raise self._too_large()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_count > self.limits.max_headers:
            raise _Refusal(431, "too-many-headers", "Request Header Fields Too Large",
                           f"more than {self.limits.max_headers} request headers",
                           "too_many_headers")  # fmt: skip
        if self._header_bytes > self.limits.max_header_bytes:
            raise self._too_large()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        # Requests in flight are the server's tasks: idle and slow connections hold none.
        if len(self.tasks) >= self.limits.max_in_flight:
            self.book.on_refusal("in_flight")
            self.app = _overloaded(self.limits.max_in_flight)
        else:
            self.app = self._app
        super().on_headers_complete()
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # Deadlines and refusals

    def _headers_late(self) -> None:
        if self._answering():  # a pipelined request: its clock starts once it is read
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout_s, self._headers_late
            )
            return
        self._header_timer = None
        self._refuse(_Refusal(408, "request-timeout", "Request Timeout",
                              f"the request headers took longer than "
                              f"{self.limits.header_timeout_s:g} s", "header_timeout"))  # fmt: skip

    def _body_late(self) -> None:
        if self._answering():  # queued behind an earlier request: reading is paused
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)
            return
        self._body_timer = None
        if self.cycle is not None and self.cycle.response_complete:
            # Answered already (before the body was read); the client is still sending a
            # body nobody reads: close without another answer.
            self.book.on_refusal("body_timeout")
            self.transport.close()
            return
        self._refuse(_Refusal(408, "request-timeout", "Request Timeout",
                              f"the request body took longer than "
                              f"{self.limits.body_timeout_s:g} s", "body_timeout"))  # fmt: skip

    def _answering(self) -> bool:
        """Whether an earlier request of this connection is still being answered while the
        current one waits (pipelining): its deadlines do not run yet."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return False
        return self._in_headers or any(queued is cycle for queued, _ in self.pipeline)

    def _too_large(self) -> _Refusal:
        return _Refusal(431, "headers-too-large", "Request Header Fields Too Large",
                        f"the request line and headers exceed {self.limits.max_header_bytes} "
                        "bytes", "headers_too_large")  # fmt: skip

    def _refuse(self, refusal: _Refusal, headers: dict[str, str] | None = None) -> None:
        self._cancel_timers()
        self.book.on_refusal(refusal.reason)
        if self.transport.is_closing():
            return
        log.debug("refused %s: %s", self.client, refusal.detail)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A request of this connection is with the app: it sees a disconnect and its
            # answer is dropped, so that nothing is written after or into the refusal.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:  # part of an answer is out: no room for another
                self.transport.close()
                return
        self.transport.write(_problem_bytes(refusal, headers))
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def _bad_request(detail: str) -> _Refusal:
    return _Refusal(400, "bad-request", "Bad Request", detail, "bad_request")


def _overloaded(cap: int) -> ASGIApp:
    async def overloaded(scope: Scope, receive: Receive, send: Send) -> None:
        cid = new_event_id()
        headers = {"Retry-After": "1", "x-correlation-id": cid, "connection": "close"}
        detail = f"more than {cap} requests in flight"
        response = problem(503, "overloaded", "Service Overloaded", detail, headers,
                           correlation_id=cid)  # fmt: skip
        await response(scope, receive, send)

    return overloaded


def hardened_protocol(
    limits: ServerLimits, on_refusal: Callable[[str], None] | None = None
) -> type[HardenedProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``limits``; each call
    makes a fresh connection book, so use one class per server."""

    def ignore(_: str) -> None:
        return None

    book = _ConnectionBook(limits, on_refusal if on_refusal is not None else ignore)
    return type("SluiceHttpProtocol", (HardenedProtocol,), {"limits": limits, "book": book})


def server_config(
    app: ASGIApp,
    host: str,
    port: int,
    limits: ServerLimits,
    on_refusal: Callable[[str], None] | None = None,
    **options: Any,
) -> uvicorn.Config:
    """The uvicorn configuration serving ``app`` with ``limits`` (``options``: more of
    ``uvicorn.Config``'s, e.g. ``lifespan``, ``timeout_graceful_shutdown``)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=hardened_protocol(limits, on_refusal),
        ws="none",  # no websocket routes: an upgrade is answered as plain HTTP
        timeout_keep_alive=limits.keep_alive_s,
        limit_concurrency=None,  # requests in flight are capped by the protocol instead
        backlog=min(4096, limits.max_connections),
        access_log=False,  # structured request logging belongs to the app, not the server
        log_level="warning",
        proxy_headers=False,  # a load balancer's headers are not trusted by default
        **options,
    )


def raise_open_files_limit(limits: ServerLimits) -> ServerLimits:
    """Raise this process's open-file limit to its hard limit and keep ``max_connections``
    under it (a refused connection beats an ``accept`` failing with EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    room = max(64, soft - 256)  # files, the database and the KV need descriptors too
    if limits.max_connections <= room:
        return limits
    log.warning("max_connections lowered from %d to %d (open-file limit %d)",
                limits.max_connections, room, soft)  # fmt: skip
    return replace(limits, max_connections=room, max_connections_per_client=min(
        limits.max_connections_per_client, room))  # fmt: skip


__all__ = [
    "REFUSAL_REASONS",
    "HardenedProtocol",
    "ServerLimits",
    "hardened_protocol",
    "raise_open_files_limit",
    "server_config",
    "server_limits",
]


class SignalFreeServer(uvicorn.Server):
    """uvicorn's server without its signal handlers, for a server beside other work in one
    loop (a worker's metrics port): the process's own SIGTERM/SIGINT handlers stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the process's signal handlers alone."""
        yield
