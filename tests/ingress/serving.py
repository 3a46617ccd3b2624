"""A real ``sluice serve`` of the ingress test app, for connection-level tests, and raw sockets.

The server runs as a subprocess (as deployed: its own event loop and process), so a test's
thousand sockets compete with it only for the cores, not for its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from sluice.testing import free_port
from tests.ingress.conftest import CONFIG, WORKFLOW

SLUICE = [sys.executable, "-m", "sluice"]


@dataclass(frozen=True)
class Served:
    """A running server: where it listens and a tenant's API key."""

    host: str
    port: int
    key: str
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        """The process runs and answers /healthz."""
        if self.proc.poll() is not None:
            return False
        return httpx.get(f"{self.url}/healthz", timeout=10).status_code == 200

    def statuses(self) -> dict[str, float]:
        """``sluice_http_requests_total`` by status, summed over routes, from /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        counts: dict[str, float] = {}
        for status, value in re.findall(
            r'^sluice_http_requests_total\{[^}]*status="(\d+)"[^}]*\} (\S+)$', text, re.M
        ):
            counts[status] = counts.get(status, 0.0) + float(value)
        return counts


def raise_nofile() -> None:
    """Let this process hold thousands of sockets (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def sluice_serve(app_dir: Path, *options: str) -> Iterator[Served]:
    """``sluice serve`` of the ingress test app in ``app_dir`` with ``options``."""
    (app_dir / "workflows").mkdir(parents=True, exist_ok=True)
    (app_dir / "sluice.yaml").write_text(textwrap.dedent(CONFIG))
    (app_dir / "workflows" / "tickets.yaml").write_text(textwrap.dedent(WORKFLOW))
    key = subprocess.run(
        [*SLUICE, "apikey", "create", "--tenant", "acme", "--app", str(app_dir)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    proc = subprocess.Popen([*SLUICE, "serve", str(app_dir), "--port", str(port), *options])
    served = Served("127.0.0.1", port, key, proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sluice serve exited with {proc.returncode}")
            try:
                if httpx.get(f"{served.url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("sluice serve did not become ready")
            time.sleep(0.05)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Answer:
    """What a raw exchange got back: a status (None: closed without an answer) and parts."""

    status: int | None
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        """The problem document of a refusal (asserting it is one)."""
        assert self.headers.get("content-type") == "application/problem+json", self
        doc = orjson.loads(self.body)
        assert isinstance(doc, dict)
        assert doc["status"] == self.status
        assert doc["correlation_id"] == self.headers["x-correlation-id"]
        return doc


def parse_answer(raw: bytes) -> Answer:
    """The first response in ``raw`` (empty: no answer)."""
    if not raw:
        return Answer(None, {}, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return Answer(status, headers, body)


async def exchange(
    host: str,
    port: int,
    data: bytes,
    *,
    half_close: bool = False,
    timeout_s: float = 10.0,
) -> Answer:
    """Send ``data`` on a fresh connection and read until the server closes it (or the
    timeout); a reset connection counts as closed."""
    reader, writer = await asyncio.open_connection(host, port)
    received = b""
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()
            if half_close:
                writer.write_eof()
        async with asyncio.timeout(timeout_s):
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    received += chunk
                    if b"\r\n\r\n" not in received:
                        continue
                    answer = parse_answer(received)
                    length = int(answer.headers.get("content-length", -1))
                    if answer.status is not None and len(answer.body) >= length >= 0:
                        break
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return parse_answer(received)


@contextlib.asynccontextmanager
async def valid_flow(served: Served, concurrency: int = 2) -> AsyncIterator[list[int]]:
    """Valid API runs sent on ``concurrency`` keep-alive connections for as long as the block
    runs; yields the statuses (a transport error counts as status 0)."""
    statuses: list[int] = []
    stop = asyncio.Event()
    headers = {"authorization": f"Bearer {served.key}"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=served.url, timeout=30, headers=headers) as http:
            while not stop.is_set():
                try:
                    resp = await http.post("/v1/workflows/tickets/runs", json={"text": "hi"})
                    statuses.append(resp.status_code)
                except httpx.TransportError:
                    statuses.append(0)
                await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(client()) for _ in range(concurrency)]
    try:
        yield statuses
    finally:
        stop.set()
        await asyncio.gather(*tasks)
