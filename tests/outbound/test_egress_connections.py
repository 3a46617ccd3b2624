"""The egress policy on real sockets: where connections go, redirects, the proxy, TLS names.

Servers listen on 127.0.0.1 (the allowed local service, ``allow_private: [127.0.0.1/32]``) and
on 127.0.0.2 (an internal service the policy must keep out of reach). Names resolve through a
local table (no network).
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

from sluice.errors import StepError
from sluice.models.openai_client import ClientSettings, OpenAIClient
from sluice.outbound.egress import Egress
from sluice.outbound.http1 import Http1Pool
from sluice.outbound.policy import EgressDeniedError, EgressPolicy
from sluice.outbound.sessions import client_session
from sluice.outbound.upstream import Upstream, UpstreamError

from .ssrf import LocalResolver


@dataclass
class Seen:
    """What a test server saw: each request's Host header, peer address and path."""

    hits: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Site:
    """A running test server."""

    host: str
    port: int
    seen: Seen


Start = Callable[..., Awaitable[Site]]


@pytest.fixture
async def serve() -> AsyncIterator[Start]:
    """Start aiohttp servers on a given loopback address; stop them after the test."""
    runners: list[web.AppRunner] = []

    async def start(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Site:
        seen = Seen()

        async def handle(request: web.Request) -> web.StreamResponse:
            seen.hits.append((request.host, request.remote or "", request.path))
            if request.path == "/redirect":
                raise web.HTTPFound(request.query["to"])
            if request.path == "/slow":
                await asyncio.sleep(3)
            if request.path == "/chat/completions":
                return web.json_response({"ok": True})
            if request.path == "/big":
                return web.Response(body=b"x" * 5000)
            if request.path == "/chunked":  # no content-length: the size shows while reading
                response = web.StreamResponse()
                await response.prepare(request)
                for _ in range(5):
                    await response.write(b"x" * 1000)
                await response.write_eof()
                return response
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0, ssl_context=tls)
        await site.start()
        runners.append(runner)
        server = site._server  # the bound port is only known to the listening socket
        assert isinstance(server, asyncio.Server)
        return Site(host, server.sockets[0].getsockname()[1], seen)

    yield start
    for runner in runners:
        await runner.cleanup()


def _policy(resolver: LocalResolver, allow: list[str], **values: object) -> EgressPolicy:
    return EgressPolicy.from_config(
        {"allow": allow, "allow_private": ["127.0.0.1/32"], **values}, resolver=resolver
    )


async def _get(policy: EgressPolicy, url: str, **options: object) -> tuple[int, str]:
    async with (
        client_session(4, policy=policy) as session,
        session.get(url, **options) as response,  # type: ignore[arg-type]  # the test's own options
    ):
        return response.status, await response.text()


async def test_the_connection_goes_to_the_checked_address(serve: Start) -> None:
    """One lookup per connection; the socket goes to that address; Host keeps the name."""
    local = await serve()
    resolver = LocalResolver({"api.test": ["127.0.0.1"]})
    policy = _policy(resolver, ["api.test"])
    assert await _get(policy, f"http://api.test:{local.port}/ok") == (200, "ok")
    assert local.seen.hits == [(f"api.test:{local.port}", "127.0.0.1", "/ok")]
    assert resolver.lookups == ["api.test"]


async def test_a_rebinding_name_never_reaches_the_internal_address(serve: Start) -> None:
    """The second answer (127.0.0.2) is checked like the first and refused."""
    local = await serve()
    internal = await serve("127.0.0.2")
    resolver = LocalResolver({}, {"api.test": [["127.0.0.1"], ["127.0.0.2"]]})
    policy = _policy(resolver, ["api.test"])
    assert (await _get(policy, f"http://api.test:{local.port}/ok"))[0] == 200
    with pytest.raises(EgressDeniedError) as info:
        await _get(policy, f"http://api.test:{internal.port}/ok")
    assert "api.test resolves to 127.0.0.2: loopback address" in info.value.reason
    assert internal.seen.hits == []
    assert not info.value.retryable


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://127.0.0.2:{internal}/x", "127.0.0.2: loopback address"),
        ("http://internal.test:{internal}/x", "internal.test resolves to 127.0.0.2: loopback"),
        ("http://[::ffff:127.0.0.2]:{internal}/x", "IPv4-mapped IPv6 address"),
        ("http://169.254.169.254/latest/meta-data/", "link-local address"),
        ("http://10.0.0.1/", "private address (10.0.0.0/8)"),
        ("http://0x7f.1:{internal}/", "non-canonical IPv4 form"),
        ("http://2130706433:{internal}/", "non-canonical IPv4 form"),
        ("http://api.test@127.0.0.2:{internal}/", "user-info in the URL"),
        ("http://elsewhere.test:{local}/ok", "elsewhere.test:{local} is not on the allowlist"),
        ("http://127.0.0.1:{local}/ok", "127.0.0.1:{local} is not on the allowlist"),
    ],
)
async def test_each_redirect_is_checked_again(serve: Start, target: str, reason: str) -> None:
    """An allowed server redirecting to an internal address: refused, nothing sent there."""
    local = await serve()
    internal = await serve("127.0.0.2")
    resolver = LocalResolver({"api.test": ["127.0.0.1"], "internal.test": ["127.0.0.2"],
                              "elsewhere.test": ["127.0.0.1"]})  # fmt: skip
    policy = _policy(resolver, ["api.test", "internal.test"])
    ports = {"internal": internal.port, "local": local.port}
    url = f"http://api.test:{local.port}/redirect"
    with pytest.raises(EgressDeniedError) as info:
        await _get(policy, url, params={"to": target.format(**ports)})
    assert reason.format(**ports) in info.value.reason, info.value.reason
    assert [path for _, _, path in local.seen.hits] == ["/redirect"]
    assert internal.seen.hits == []


async def test_redirects_within_the_allowlist_are_followed_up_to_the_limit(
    serve: Start,
) -> None:
    """An allowed redirect is followed; past ``max_redirects`` the call is refused."""
    local = await serve()
    resolver = LocalResolver({"api.test": ["127.0.0.1"]})
    base = f"http://api.test:{local.port}"
    policy = _policy(resolver, ["api.test"], max_redirects=1)
    assert await _get(policy, f"{base}/redirect", params={"to": f"{base}/ok"}) == (200, "ok")
    hop = f"{base}/redirect?to={base}/ok"
    with pytest.raises(EgressDeniedError) as info:
        await _get(policy, f"{base}/redirect", params={"to": hop})
    assert "after 1 redirects" in info.value.reason
    assert [path for _, _, path in local.seen.hits] == ["/redirect", "/ok", "/redirect",
                                                        "/redirect"]  # fmt: skip


async def test_the_lean_relay_client_connects_to_the_checked_address(serve: Start) -> None:
    """The AI gateway's HTTP/1.1 pool: same lookup, same check, same Host."""
    local = await serve()
    internal = await serve("127.0.0.2")
    resolver = LocalResolver({"api.test": ["127.0.0.1"], "internal.test": ["127.0.0.2"]})
    url = f"http://api.test:{local.port}/chat/completions"
    policy = _policy(resolver, []).only(url)
    pool = Http1Pool(url, {}, policy=policy, max_connections=2, max_bytes=1 << 16)
    try:
        answer = await pool.post(b"{}")
    finally:
        await pool.aclose()
    assert (answer.status, answer.body) == (200, b'{"ok": true}')
    assert local.seen.hits == [(f"api.test:{local.port}", "127.0.0.1", "/chat/completions")]
    bad = f"http://internal.test:{internal.port}/chat/completions"
    refused = Http1Pool(bad, {}, policy=policy.only(bad), max_connections=1, max_bytes=1024)
    with pytest.raises(EgressDeniedError, match=r"resolves to 127\.0\.0\.2: loopback"):
        await refused.post(b"{}")
    assert internal.seen.hits == []


class ConnectProxy:
    """A small HTTP proxy: CONNECT tunnels, and absolute-form requests (the way clients send
    plain http through a proxy), which it resolves with the test's table."""

    def __init__(self, resolver: LocalResolver) -> None:
        self.resolver = resolver
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            self.requests.append(line)
            method, target, _ = line.split(" ")
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                leftover = b""
            else:
                parsed = URL(target)
                address = (await self.resolver.resolve(parsed.host or "", parsed.port or 80))[0]
                up_reader, up_writer = await asyncio.open_connection(address, parsed.port)
                leftover = head
            up_writer.write(leftover)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        sink.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    """A running test proxy."""
    found = ConnectProxy(LocalResolver({"api.test": ["127.0.0.1"]}))
    found.server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    yield found
    found.server.close()


async def test_every_call_goes_through_the_proxy(serve: Start, proxy: ConnectProxy) -> None:
    """With ``outbound.proxy`` the relay pool tunnels to the checked address (not the name),
    the sessions send through the proxy, and a refused URL never reaches it."""
    local = await serve()
    resolver = LocalResolver({"api.test": ["127.0.0.1"], "internal.test": ["10.0.0.9"]})
    policy = _policy(resolver, ["api.test", "internal.test"], proxy=proxy.url)
    url = f"http://api.test:{local.port}/chat/completions"
    pool = Http1Pool(url, {}, policy=policy.only(url), max_connections=1, max_bytes=1 << 16)
    try:
        assert (await pool.post(b"{}")).status == 200
    finally:
        await pool.aclose()
    assert proxy.requests == [f"CONNECT 127.0.0.1:{local.port} HTTP/1.1"]
    assert await _get(policy, f"http://api.test:{local.port}/ok") == (200, "ok")
    assert proxy.requests[1] == f"GET http://api.test:{local.port}/ok HTTP/1.1"
    with pytest.raises(EgressDeniedError, match=r"resolves to 10\.0\.0\.9: private"):
        await _get(policy, "http://internal.test/")
    assert len(proxy.requests) == 2
    # Through the proxy the request line carries the authority; the name is kept either way.
    assert [host.split(":")[0] for host, _, _ in local.seen.hits] == ["api.test"] * 2


async def test_responses_are_bounded_in_time(serve: Start) -> None:
    """The policy's timeout bounds a session's call when the caller sets none."""
    local = await serve()
    policy = _policy(LocalResolver({"api.test": ["127.0.0.1"]}), ["api.test"], timeout_s=0.5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await _get(policy, f"http://api.test:{local.port}/slow")
    assert asyncio.get_running_loop().time() - started < 2.5


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


async def test_tls_keeps_the_name_while_connecting_to_the_address(
    serve: Start, tmp_path: Path
) -> None:
    """The certificate for ``api.test`` verifies although the socket goes to 127.0.0.1:
    SNI and the hostname check use the name, the connection the checked address."""
    cert, key = _certificate(tmp_path, "api.test")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: names.append(name)  # records the SNI name
    local = await serve(tls=server_tls)
    client_tls = ssl.create_default_context(cafile=str(cert))
    resolver = LocalResolver({"api.test": ["127.0.0.1"]})
    policy = _policy(resolver, ["api.test"])
    assert await _get(policy, f"https://api.test:{local.port}/ok", ssl=client_tls) == (200, "ok")
    assert names == ["api.test"]
    assert local.seen.hits == [(f"api.test:{local.port}", "127.0.0.1", "/ok")]


@dataclass(frozen=True)
class _Deployment:
    name: str
    base_url: str
    api_key: str | None = None
    timeout_s: float = 5.0
    max_connections: int = 2


async def test_clients_without_an_allowance_never_reach_loopback(serve: Start) -> None:
    """Model client, gateway relays and the steps' session, built without ``allow_private``:
    every call to a loopback server is refused, never retried, and nothing arrives."""
    local = await serve()
    base = f"http://127.0.0.1:{local.port}"
    async with OpenAIClient(ClientSettings(f"{base}/v1")) as client:
        with pytest.raises(EgressDeniedError) as refused:
            await client.chat("m", [{"role": "user", "content": "hi"}])
    assert refused.value.reason == "127.0.0.1: loopback address"
    assert not refused.value.retryable
    upstream = Upstream(_Deployment("d", base), 1 << 16)
    await upstream.start()
    try:
        with pytest.raises(UpstreamError, match="loopback address"):
            await upstream.complete(b"{}")
        with pytest.raises(UpstreamError, match="loopback address"):
            await upstream.open_stream(b"{}")
    finally:
        await upstream.aclose()
    egress = Egress()
    try:
        with pytest.raises(EgressDeniedError, match="loopback address"):
            await egress.session().post(f"{base}/hook", data=b"{}")
    finally:
        await egress.aclose()
    assert local.seen.hits == []


@pytest.mark.parametrize("path", ["/big", "/chunked"])
async def test_answers_are_bounded_in_size(serve: Start, path: str) -> None:
    """A step reading an answer past ``max_response_bytes`` gets a StepError, whether the
    size was announced or only shows while reading."""
    local = await serve()
    policy = _policy(LocalResolver({"api.test": ["127.0.0.1"]}), ["api.test"],
                     max_response_bytes=1000)  # fmt: skip
    egress = Egress(policy)
    try:
        async with egress.session().get(f"http://api.test:{local.port}/ok") as response:
            assert await egress.read(response) == b"ok"
        async with egress.session().get(f"http://api.test:{local.port}{path}") as response:
            with pytest.raises(StepError, match="exceeds 1000") as info:
                await egress.read(response)
        assert not info.value.retryable
    finally:
        await egress.aclose()
