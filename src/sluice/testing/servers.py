"""Running real servers in tests and benchmarks: free ports, readiness, ASGI apps on a socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from types import TracebackType
from typing import Literal, Self

import httpx
import uvicorn
from starlette.types import ASGIApp

from sluice.errors import SluiceError
from sluice.ingress.server import ServerLimits, server_config

_START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(
    client: httpx.AsyncClient,
    proc: subprocess.Popen[bytes] | None = None,
    path: str = "/readyz",
    timeout_s: float = 60.0,
) -> None:
    """Wait until ``path`` answers 200; fail early, with its exit code, if ``proc`` dies."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            if (await client.get(path)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{path} did not answer 200 within {timeout_s:.0f} s")


class AsgiServer:
    """An ASGI app served by uvicorn on ``host:port`` in this event loop (port ``0``: a free
    one, read back after start); ``async with`` or :meth:`start` / :meth:`aclose`. With
    ``limits``, served with the deadlines and caps of ``sluice serve``."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        lifespan: Literal["auto", "on", "off"] = "off",
        limits: ServerLimits | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        # Keep-alive connections of a finished load test must not hold shutdown up.
        if limits is not None:  # served like `sluice serve`: deadlines and connection caps
            config = server_config(
                app, host, port, limits, lifespan=lifespan, timeout_graceful_shutdown=1
            )
        else:
            config = uvicorn.Config(
                app,
                host=host,
                port=port,
                lifespan=lifespan,
                access_log=False,
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving; return once requests are accepted."""
        self._task = asyncio.create_task(self._server.serve())
        deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_S
        while not self._server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                await self.aclose()
                raise SluiceError(f"could not start serving on {self.host}:{self.port}")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop serving and wait until the socket is closed."""
        if self._task is None:
            return
        self._server.should_exit = True
        # A failed start has already been reported; shutting down must not raise again.
        with contextlib.suppress(SystemExit, OSError):
            await self._task
        self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
