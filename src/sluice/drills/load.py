"""Open-loop load over HTTP for drills: requests go out on a schedule, not when answers return.

A closed loop (send, wait, send) slows down with the server and so never overloads it; an
open loop keeps offering ``rate`` requests a second whatever happens, which is what a flood
or a throttled provider looks like from the outside. In-flight requests are capped
(``max_in_flight``): past it a request is counted as ``dropped`` on the client side, so the
generator's own memory stays bounded too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson


@dataclass
class LoadResult:
    """What an open-loop run offered and what came back."""

    sent: int = 0
    accepted: dict[int, str] = field(default_factory=dict)  # input index -> event id
    refused_503: int = 0
    limited_429: int = 0
    errors: int = 0  # other statuses and transport errors
    dropped: int = 0  # not sent: max_in_flight reached
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def offered_per_s(self) -> float:
        """Requests offered per second (sent and dropped)."""
        return (self.sent + self.dropped) / self.seconds if self.seconds else 0.0

    @property
    def refused_share(self) -> float:
        """Share of sent requests answered 503."""
        return self.refused_503 / self.sent if self.sent else 0.0


async def open_loop(
    base_url: str,
    path: str,
    inputs: Sequence[dict[str, Any]],
    *,
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
    max_in_flight: int = 512,
    progress: Callable[[str], None] = lambda _: None,
) -> LoadResult:
    """POST ``inputs`` (cycled) to ``path`` at ``rate`` per second for ``seconds``."""
    result = LoadResult()
    total = max(1, round(rate * seconds))
    slots = asyncio.Semaphore(max_in_flight)
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    timeout = aiohttp.ClientTimeout(total=30)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(
        base_url, connector=connector, timeout=timeout, headers=headers
    ) as session:

        async def one(index: int) -> None:
            try:
                body = orjson.dumps(inputs[index % len(inputs)])
                async with session.post(
                    path, data=body, headers={"content-type": "application/json"}
                ) as resp:
                    result.statuses[resp.status] = result.statuses.get(resp.status, 0) + 1
                    if resp.status == 202:
                        result.accepted[index] = (await resp.json(loads=orjson.loads))["event_id"]
                    elif resp.status == 503:
                        result.refused_503 += 1
                    elif resp.status == 429:
                        result.limited_429 += 1
                    else:
                        result.errors += 1
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                result.errors += 1
            finally:
                slots.release()

        started = time.monotonic()
        next_report = started + 5
        for index in range(total):
            due = started + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if slots.locked():
                result.dropped += 1
                continue
            await slots.acquire()
            result.sent += 1
            task = asyncio.create_task(one(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if time.monotonic() >= next_report:
                next_report += 5
                progress(f"offered {index + 1}/{total}: {len(result.accepted)} accepted,"
                         f" {result.refused_503} refused (503)")  # fmt: skip
        result.seconds = time.monotonic() - started
        if tasks:
            await asyncio.gather(*tasks)
    return result


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's memory from /proc in MiB: ``VmHWM`` (peak resident, the default) or
    ``VmRSS`` (resident now); 0 where unavailable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
