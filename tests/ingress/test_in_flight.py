"""Requests in flight are capped apart from open connections (served like ``sluice serve``)."""

from __future__ import annotations

import asyncio

from sluice.asgi import create_http_app
from sluice.ingress.server import ServerLimits
from sluice.testing.servers import AsgiServer
from tests.ingress.conftest import Ingress
from tests.ingress.serving import exchange

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
HALF_BODY = (
    b"POST /v1/hooks/helpdesk HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{"
)


async def test_idle_connections_do_not_use_up_requests_in_flight(ingress: Ingress) -> None:
    """With two requests allowed in flight, twenty idle connections change nothing; two
    requests waiting for their bodies do: the next gets 503 + Retry-After as a problem
    document naming the cap, and requests are served again once they are gone."""
    limits = ServerLimits(max_in_flight=2)
    app = create_http_app(ingress.app, ingress.gateway)
    async with AsgiServer(app, limits=limits) as server:
        host, port = server.host, server.port
        idle = [await asyncio.open_connection(host, port) for _ in range(20)]
        assert (await exchange(host, port, HEALTH)).status == 200

        busy = [await asyncio.open_connection(host, port) for _ in range(2)]
        for _, writer in busy:
            writer.write(HALF_BODY)
            await writer.drain()
        refused = None
        for _ in range(100):  # until both requests are in flight on the server
            answer = await exchange(host, port, HEALTH)
            if answer.status == 503:
                refused = answer
                break
            await asyncio.sleep(0.05)
        assert refused is not None
        assert "more than 2 requests in flight" in str(refused.problem()["detail"])
        assert refused.headers["retry-after"] == "1"

        for _, writer in busy + idle:
            writer.close()
        statuses = []
        for _ in range(100):  # until the server has noticed the closes
            statuses.append((await exchange(host, port, HEALTH)).status)
            if statuses[-1] == 200:
                break
            await asyncio.sleep(0.05)
        assert statuses[-1] == 200
        assert set(statuses) <= {200, 503}
