"""Serving the model simulator with uvicorn: in the caller's event loop, or as a process.

:class:`SimulatorServer` runs a :class:`~sluice.drills.simulator.ModelSimulator` on a real
socket inside the current event loop (port ``0`` picks a free one), for tests and drills that
need real HTTP; :func:`serve` blocks and is what ``sluice simulate-model`` runs.
"""

from __future__ import annotations

import uvicorn

from sluice.drills.simulator import ModelSimulator
from sluice.testing.servers import AsgiServer


class SimulatorServer(AsgiServer):
    """A simulator listening on ``host:port`` in this event loop; ``async with`` or aclose()."""

    def __init__(self, simulator: ModelSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(simulator, host, port)
        self.simulator = simulator

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://host:port/v1``."""
        return f"{self.url}/v1"


def serve(simulator: ModelSimulator, host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve the simulator until interrupted (uvloop and httptools when installed)."""
    uvicorn.run(simulator, host=host, port=port, lifespan="off", access_log=False, log_level="info")
