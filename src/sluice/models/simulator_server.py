"""Serving the model simulator with uvicorn: in the caller's event loop, or as a process.

:class:`SimulatorServer` runs a :class:`~sluice.models.simulator.ModelSimulator` on a real
socket inside the current event loop (port ``0`` picks a free one), for tests and drills that
need real HTTP; :func:`serve` blocks and is what ``sluice simulate-model`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

import uvicorn

from sluice.errors import SluiceError
from sluice.models.simulator import ModelSimulator

_START_TIMEOUT_S = 10.0


class SimulatorServer:
    """A simulator listening on ``host:port`` in this event loop; ``async with`` or aclose()."""

    def __init__(self, simulator: ModelSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        config = uvicorn.Config(
            simulator,
            host=host,
            port=port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            # Keep-alive connections of a finished load test must not hold shutdown up.
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        """Bind and start serving; return once requests are accepted."""
        self._task = asyncio.create_task(self._server.serve())
        deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_S
        while not self._server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                await self.aclose()
                raise SluiceError(f"simulator could not start on {self.host}:{self.port}")
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

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def serve(simulator: ModelSimulator, host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve the simulator until interrupted (uvloop and httptools when installed)."""
    uvicorn.run(simulator, host=host, port=port, lifespan="off", access_log=False, log_level="info")
