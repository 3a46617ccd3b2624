"""Running real servers in tests and benchmarks: free ports and readiness."""

from __future__ import annotations

import asyncio
import socket
import subprocess

import httpx


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
