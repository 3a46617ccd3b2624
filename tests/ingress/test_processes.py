"""``sluice serve --processes N``: several serving processes on one port."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.ingress.serving import sluice_serve

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(child) for child in fh.read().split()]


def _listeners(port: int) -> int:
    """Sockets listening on ``port`` (state 0A) in this network namespace."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if int(local.rsplit(":", 1)[1], 16) == port and state == "0A":
                    count += 1
    return count


def _accepted(text: str) -> float:
    return sum(
        float(value)
        for value in re.findall(r"^sluice_events_accepted_total\{[^}]*\} (\S+)$", text, re.M)
    )


def test_two_processes_serve_one_port_and_both_accept(tmp_path: Path) -> None:
    """Two children listen on one port, both accept runs into the shared store, and SIGTERM
    to the supervisor stops them all cleanly."""
    with sluice_serve(tmp_path / "app", "--processes", "2", "--no-workers") as served:
        deadline = time.monotonic() + 60
        while _listeners(served.port) < 2 or len(_children(served.proc.pid)) < 2:
            assert time.monotonic() < deadline, "two serving processes did not start"
            time.sleep(0.1)
        children = _children(served.proc.pid)
        auth = {"authorization": f"Bearer {served.key}"}
        ids = set()
        for i in range(40):  # a new connection each: the kernel spreads them over the sockets
            resp = httpx.post(
                f"{served.url}/v1/workflows/tickets/runs",
                json={"text": f"ticket {i}"},
                headers=auth,
                timeout=30,
            )
            assert resp.status_code == 202, resp.text
            ids.add(resp.json()["event_id"])
        assert len(ids) == 40
        # Each process counts the runs it accepted. A count strictly between 0 and 40 proves
        # the other process accepted the rest (an even split shows one value, 20, twice).
        seen = {_accepted(httpx.get(f"{served.url}/metrics", timeout=10).text) for _ in range(40)}
        assert any(0 < count < 40 for count in seen), seen
        assert len(seen) == 1 or sum(seen) == 40, seen
        for i, event_id in enumerate(sorted(ids)[:4]):  # the store is one: any process reads
            got = httpx.get(f"{served.url}/v1/runs/{event_id}", headers=auth, timeout=10)
            assert got.status_code == 200, (i, got.text)
    assert served.proc.returncode == 0
    for child in children:
        assert not Path(f"/proc/{child}").exists() or _zombie(child)


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
