"""The egress policy inside aiohttp: every request, redirect and new connection is checked.

:func:`policy_trace` admits each request's URL (the first and every redirect hop) against the
allowlist and counts redirects; :class:`PolicyConnector` resolves a host once through the
policy and hands aiohttp only the checked addresses, so the socket goes to an address the
policy accepted while TLS (SNI, certificate checks) and the ``Host`` header keep the name.
Through a proxy (``outbound.proxy``), the connector reaches the proxy and the request's own
host is resolved and checked in :func:`policy_trace` instead (the proxy resolves it again:
see docs/security.md).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from sluice.outbound.policy import EgressDeniedError, EgressPolicy

if TYPE_CHECKING:
    from aiohttp.abc import ResolveResult
    from aiohttp.tracing import Trace


class PolicyConnector(aiohttp.TCPConnector):
    """A TCP connector that connects only to addresses the policy checked."""

    def __init__(self, policy: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        proxy = URL(policy.proxy) if policy.proxy else None
        self._proxy = (proxy.raw_host or "", proxy.port) if proxy is not None else None

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        if self._proxy is not None and (host, port) == self._proxy:
            # The proxy is the operator's choice, often on a private address: not checked.
            return await super()._resolve_host(host, port, traces)
        name = (host[:-1] if host.endswith(".") else host).lower()
        if ":" in name:  # an IPv6 address: compared in its canonical spelling
            name = str(ipaddress.IPv6Address(name))
        # The request hooks checked the URL against the allowlist (with the tenant's); this
        # check, of the app's and every tenant's hosts, holds even for a request they missed.
        if not self.policy.allows_any(name, port):
            raise EgressDeniedError(f"{name}:{port}", f"{name}:{port} is not on the allowlist")
        addresses = await self.policy.resolve(name, port)
        return [
            {
                "hostname": host, "host": address, "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0, "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]  # fmt: skip


def policy_trace(policy: EgressPolicy) -> aiohttp.TraceConfig:
    """Trace hooks that admit the request's URL and each redirect's target before it is
    followed (``trace_request_ctx={"tenant": ...}`` adds that tenant's allowlist), and refuse
    more than ``max_redirects`` redirects."""
    trace = aiohttp.TraceConfig()

    async def admit(url: URL, ctx: SimpleNamespace) -> None:
        asked = ctx.trace_request_ctx
        tenant = asked.get("tenant") if isinstance(asked, Mapping) else None
        target = policy.admit(url, tenant)
        if policy.proxy:  # the proxy connects by name: its addresses are checked here
            await policy.resolve(target.host, target.port, shown=str(url))

    async def on_request_start(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        await admit(params.url, ctx)

    async def on_request_redirect(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestRedirectParams,
    ) -> None:
        ctx.redirects = getattr(ctx, "redirects", 0) + 1
        location = params.response.headers.get("location")
        if ctx.redirects > policy.max_redirects:
            limit = policy.max_redirects
            raise EgressDeniedError(
                str(params.url), f"redirect to {location} after {limit} redirects"
            )
        if location is None:
            return  # aiohttp follows nothing
        try:
            following = params.response.url.join(URL(location))
        except ValueError:
            return  # aiohttp refuses it as not a URL
        if following.scheme in ("http", "https"):  # others aiohttp refuses itself
            await admit(following, ctx)

    trace.on_request_start.append(on_request_start)
    trace.on_request_redirect.append(on_request_redirect)
    return trace
