"""The accept path's work in instructions: signed webhooks through the ASGI app, in process.

Wall-clock benchmarks on a shared machine move with the load; instruction counts do not. This
script builds the app of ``bench/ingress.py`` (signature, rate limit, idempotency, mapping,
JSON Schema, PII masking, AES-GCM, the durable SQLite write, tracing, metrics) and sends
``--requests`` distinct signed deliveries straight into its ASGI application (the correlation
middleware, Starlette's router, the webhook endpoint; no socket, no HTTP parser), 32 in
flight, each answered 202. Run it twice under callgrind with two request counts: the
difference of the totals, divided by the difference of the counts, is the instructions one
accept costs in every thread (the set-up cancels out)::

    for n in 200 1200; do PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/accept_cost.py --requests $n 2>&1 | grep refs; done

Without valgrind it prints the CPU time a request of the event loop's thread and of the whole
process (noisier, but quick).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingress as bench  # the sibling benchmark: its app, tickets and secret
from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.outbound.signing import decode_secret, sign


def _scope(body: bytes, msg_id: str, key: bytes) -> dict[str, Any]:
    """The ASGI scope of one signed delivery (built before the clock starts)."""
    stamp = int(time.time())
    headers = [
        (b"host", b"bench"), (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()), (b"webhook-id", msg_id.encode()),
        (b"webhook-timestamp", str(stamp).encode()),
        (b"webhook-signature", sign(key, msg_id, stamp, body).encode()),
    ]  # fmt: skip
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/hooks/desk", "raw_path": b"/v1/hooks/desk",
        "root_path": "", "query_string": b"", "headers": headers,
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _deliver(asgi: Any, scope: dict[str, Any], body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # as a server would: nothing more until the client acts
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await asgi(scope, receive, send)
    return status


async def main_async(requests: int) -> None:
    """Start the app, send the deliveries, print what they cost."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "app"
        (root / "workflows").mkdir(parents=True)
        (root / "sluice.yaml").write_text(textwrap.dedent(bench.CONFIG))
        (root / "workflows" / "tickets.yaml").write_text(textwrap.dedent(bench.WORKFLOW))
        settings = load_settings(root)
        settings = dataclasses.replace(settings, store=f"sqlite:///{Path(tmp) / 'bench.db'}")
        app = SluiceApp.from_settings(settings, run_pools=())  # an ingress: no workers
        ingress = Ingress(app, parse_ingress(settings))
        asgi = create_http_app(app, ingress)
        bodies = bench._tickets(requests)
        key = decode_secret(bench.SECRET)
        scopes = [_scope(body, f"cost-{os.getpid()}-{i}", key) for i, body in enumerate(bodies)]
        await app.start()
        try:
            statuses: list[int] = []
            todo = iter(zip(scopes, bodies, strict=True))
            loop_cpu, cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()

            async def client() -> None:
                for scope, body in todo:
                    statuses.append(await _deliver(asgi, scope, body))

            await asyncio.gather(*(client() for _ in range(32)))
            loop_cpu = time.thread_time() - loop_cpu
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await app.stop()
    refused = [s for s in statuses if s != 202]
    if refused:
        raise SystemExit(f"{len(refused)} deliveries were not accepted: {refused[:5]}")
    per = 1e6 / requests
    print(f"{requests} accepted in {wall:.2f} s: event loop's thread {loop_cpu * per:.0f} µs"
          f" a request, process {cpu * per:.0f} µs")  # fmt: skip


def main() -> None:
    """Run the script."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000)
    asyncio.run(main_async(parser.parse_args().requests))


if __name__ == "__main__":
    main()
